import type { Argv, CommandModule } from "yargs";
import { readExperimentConfig } from "../../experiment/config.js";
import { Experiment } from "../../experiment/run-experiment.js";
import { UserError } from "../../shared/errors.js";
import { inRange } from "../../shared/options.js";

interface ExperimentFlags {
  config: string;
  out: string;
  workers: number;
  parallelRuns: number;
}

export const experimentCommand: CommandModule<object, ExperimentFlags> = {
  command: "experiment",
  describe:
    "Run a grid of IM/IT fine-tunes (data set × size × λ × template weight × KL × NEFTune × seed) from a config, with BLEU against the training outputs, results.json and report.html; rerun to continue",
  builder: (yargs: Argv) =>
    yargs
      .option("config", {
        type: "string",
        demandOption: true,
        describe: "Experiment file (YAML or JSON; see experiments/ in the repository)",
      })
      .option("out", {
        type: "string",
        demandOption: true,
        describe: "Folder for the data splits, each run, results.json and report.html (reused to continue)",
      })
      .option("workers", {
        type: "number",
        default: 1,
        describe: "Workers per run: 1 runs train, more run launch --workers N",
      })
      .option("parallel-runs", {
        type: "number",
        default: 1,
        describe:
          "Runs at once, each a process of its own (a run on wasm uses one core: --parallel-runs 2 on 2 cores halves the wall time; the results are the same)",
      }) as unknown as Argv<ExperimentFlags>,
  handler: async (argv) => {
    inRange("workers", argv.workers, 1, 1024, true);
    inRange("parallel-runs", argv.parallelRuns, 1, 256, true);
    const config = readExperimentConfig(argv.config);
    const log = (line: string) => process.stderr.write(`${line}\n`);
    const experiment = new Experiment(config, {
      outDir: argv.out,
      workers: argv.workers,
      parallelRuns: argv.parallelRuns,
      log,
    });
    const stop = (signal: string) => {
      log(`experiment: ${signal}: stopping the runs in flight; rerun the same command to continue`);
      experiment.stop();
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
    const results = await experiment.run();
    if (experiment.stopped)
      throw new UserError(
        `stopped with ${results.runs.length} runs finished; rerun the same command to continue (results so far: ${argv.out}/results.json)`,
      );
    const failed = results.runs.filter((r) => r.status === "failed");
    log(`results: ${argv.out}/results.json, report: ${argv.out}/report.html`);
    if (failed.length > 0)
      throw new UserError(
        `${failed.length} of ${results.runs.length} runs failed (first: ${failed[0]?.id}: ${failed[0]?.error}); rerun the same command to retry them`,
      );
  },
};
