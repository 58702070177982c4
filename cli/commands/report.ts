import { join } from "node:path";
import type { Argv, CommandModule } from "yargs";
import { OptionError } from "../../shared/errors.js";
import { writeRunReport } from "../../report/index.js";
import { checkOutputFile } from "../output-paths.js";

interface ReportFlags {
  runs: string[];
  out?: string | undefined;
}

export const reportCommand: CommandModule<object, ReportFlags> = {
  command: "report <runs..>",
  describe: "One self-contained HTML page comparing runs: loss, overfitting gap, throughput, step phases",
  builder: (yargs: Argv) =>
    yargs
      .positional("runs", {
        type: "string",
        array: true,
        describe: "Run directories (each a train/launch --out with metrics.jsonl)",
      })
      .option("out", {
        type: "string",
        describe:
          "HTML file to write (default: RUN_DIR/report.html when one run is given; required for several)",
      }) as unknown as Argv<ReportFlags>,
  handler: async (argv) => {
    const runs = argv.runs.map(String);
    const [only] = runs;
    // Several runs have no one directory the report belongs to, and guessing one could overwrite another's.
    if (argv.out === undefined && (runs.length !== 1 || only === undefined)) {
      throw new OptionError("out", "required when reporting several runs (e.g. --out compare.html)");
    }
    const file = argv.out ?? join(only ?? ".", "report.html");
    await checkOutputFile("out", file);
    const written = await writeRunReport(runs, file);
    process.stdout.write(written + "\n");
  },
};
