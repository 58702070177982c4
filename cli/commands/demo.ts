// `npm start`: IT, then IM, on synthetic data with long instructions and short outputs (the regime where
// the paper finds IM helps), each run a `launch` of N workers over NATS (nats-server from the PATH, else
// the in-process bus, so a bare machine works), then a table of train vs held-out output loss.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Argv, CommandModule } from "yargs";
import { launch } from "../../coordinator/launch.js";
import { launchDeadlines } from "../../coordinator/launch-deadlines.js";
import { generateSynthetic, writeSyntheticJsonl } from "../../shared/data/synth.js";
import { UserError } from "../../shared/errors.js";
import { inRange } from "../../shared/options.js";
import { announceRunDir, openRunDir } from "../run-dir.js";
import { writeReportOrSay } from "../run-report.js";
import { compileLaunchNats } from "../nats-flags.js";
import { launchSignals } from "./launch.js";

interface DemoFlags {
  out?: string;
  overwrite: boolean;
  steps: number;
  examples: number;
  workers: number;
  nats?: string;
}

const CLI_PATH = fileURLToPath(new URL("../main.js", import.meta.url));
const MODES = ["it", "im"] as const;

function trainArgs(
  mode: (typeof MODES)[number],
  flags: DemoFlags,
  outDir: string,
  trainFile: string,
  evalFile: string,
): string[] {
  const evalEvery = String(Math.max(1, Math.round(flags.steps / 4)));
  return [
    "--data",
    trainFile,
    "--eval-data",
    evalFile,
    "--loss-mode",
    mode,
    "--model",
    "tiny",
    "--steps",
    String(flags.steps),
    "--batch-size",
    "16",
    "--lr",
    "3e-3",
    "--warmup-steps",
    "10",
    "--eval-every",
    evalEvery,
    "--out",
    join(outDir, mode),
    ...(flags.overwrite ? ["--overwrite"] : []),
  ];
}

interface Summary {
  final_eval: { eval_output_loss: number; train_eval_output_loss: number; overfitting_gap: number };
  elapsed_s: number;
}

export const demoCommand: CommandModule<object, DemoFlags> = {
  command: "demo",
  describe: "IT vs IM on synthetic data, each a launch of N workers (what npm start runs)",
  builder: (yargs: Argv) =>
    yargs
      .option("out", {
        type: "string",
        describe:
          "Directory for the data and both runs, OUT/it and OUT/im (default: a new runs/<UTC time>-demo)",
      })
      .option("overwrite", {
        type: "boolean",
        default: false,
        describe: "Replace the runs already in --out",
      })
      .option("steps", {
        type: "number",
        default: 150,
        describe: "Optimizer steps per run (16 examples each)",
      })
      .option("examples", {
        type: "number",
        default: 150,
        describe: "Training examples (small data, many epochs: where IM helps)",
      })
      .option("workers", { type: "number", default: 2, describe: "Workers per run" })
      .option("nats", {
        type: "string",
        describe: "NATS URL, or 'embedded'; default as for launch",
      }) as unknown as Argv<DemoFlags>,
  handler: async (flags) => {
    const log = (line: string) => process.stderr.write(line + "\n");
    inRange("steps", flags.steps, 1, 1e9, true);
    inRange("examples", flags.examples, 1, 1e7, true);
    inRange("workers", flags.workers, 1, 1024, true);
    const runDir = await openRunDir(flags, "demo", (dir) => MODES.map((mode) => join(dir, mode)));
    announceRunDir(runDir, log);
    const out = runDir.dir;
    const trainFile = join(out, "train.jsonl");
    const evalFile = join(out, "heldout.jsonl");
    const lengths = { instructionWords: 24, outputWords: 3 };
    writeSyntheticJsonl(trainFile, generateSynthetic({ examples: flags.examples, seed: 1, ...lengths }));
    writeSyntheticJsonl(
      evalFile,
      generateSynthetic({ examples: Math.min(200, flags.examples), seed: 2, ...lengths }),
    );
    log(
      `demo: ${flags.examples} synthetic examples (~24-word instructions, ~3-word outputs); IT then IM, ${flags.steps} steps each on ${flags.workers} workers`,
    );
    const signals = launchSignals(log);
    for (const mode of MODES) {
      const job = `demo-${mode}`;
      const status = await launch(
        {
          cliPath: CLI_PATH,
          workerDevices: Array.from({ length: flags.workers }, () => "cpu"),
          workerNamePrefix: "w",
          nats: compileLaunchNats(flags.nats ?? process.env["NATS_URL"], {}, process.env),
          coordinatorArgs: [
            "--workers",
            String(flags.workers),
            "--job",
            job,
            ...trainArgs(mode, flags, out, trainFile, evalFile),
          ],
          job,
          deadlines: launchDeadlines(120_000, 1_000), // the coordinator's default timings
          printSummary: false,
          outDir: join(out, mode),
        },
        log,
        signals,
      );
      if (signals.kill.aborted) process.exit(status);
      if (status !== 0) throw new UserError(`demo: the ${mode.toUpperCase()} run exited with ${status}`);
      if (signals.drain.aborted) return;
    }
    const table = [
      `\n${"mode".padEnd(6)}${"train output loss".padStart(20)}${"held-out output loss".padStart(23)}${"gap".padStart(9)}${"time".padStart(9)}`,
    ];
    for (const mode of MODES) {
      const summary = JSON.parse(readFileSync(join(out, mode, "summary.json"), "utf8")) as Summary;
      const e = summary.final_eval;
      table.push(
        `${mode.toUpperCase().padEnd(6)}${e.train_eval_output_loss.toFixed(4).padStart(20)}${e.eval_output_loss.toFixed(4).padStart(23)}` +
          `${e.overfitting_gap.toFixed(4).padStart(9)}${`${summary.elapsed_s.toFixed(0)} s`.padStart(9)}`,
      );
    }
    table.push(
      "",
      "IM trains on the instructions too: expect a higher train loss, a lower held-out loss and a smaller gap.",
    );
    const runs = MODES.map((mode) => join(out, mode));
    const report = await writeReportOrSay(runs, log, join(out, "report.html"));
    table.push(
      `metrics: ${runs.map((run) => join(run, "metrics.jsonl")).join(", ")}`,
      ...(report ? [`report (IT beside IM): ${report}`] : []),
    );
    process.stdout.write(table.join("\n") + "\n");
  },
};
