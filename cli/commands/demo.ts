// `npm start`: IT and IM side by side on synthetic data with long instructions and short outputs (the
// regime where the paper finds IM helps), each in its own process so both cores work, then a table of
// train vs held-out output loss.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Argv, CommandModule } from "yargs";
import { generateSynthetic, writeSyntheticJsonl } from "../../shared/data/synth.js";
import { UserError } from "../../shared/errors.js";

interface DemoFlags {
  out: string;
  steps: number;
  examples: number;
}

const MAIN = join(fileURLToPath(import.meta.url), "..", "..", "main.js");

function train(mode: "it" | "im", flags: DemoFlags, trainFile: string, evalFile: string): Promise<void> {
  const args = [
    MAIN,
    "train",
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
    String(Math.max(1, Math.round(flags.steps / 4))),
    "--out",
    join(flags.out, mode),
  ];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { stdio: ["ignore", "ignore", "pipe"] });
    child.stderr.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString().split("\n").filter(Boolean))
        process.stderr.write(`[${mode}] ${line.replace(/\r/g, "")}\n`);
    });
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve() : reject(new UserError(`demo: the ${mode} run exited with ${code}`)),
    );
  });
}

export const demoCommand: CommandModule<object, DemoFlags> = {
  command: "demo",
  describe: "IT vs IM side by side on synthetic data (what npm start runs)",
  builder: (yargs: Argv) =>
    yargs
      .option("out", { type: "string", default: "runs/demo", describe: "Directory for data and both runs" })
      .option("steps", {
        type: "number",
        default: 150,
        describe: "Optimizer steps per run (16 examples each)",
      })
      .option("examples", {
        type: "number",
        default: 300,
        describe: "Training examples (small data is where IM helps)",
      }) as unknown as Argv<DemoFlags>,
  handler: async (flags) => {
    const trainFile = join(flags.out, "train.jsonl");
    const evalFile = join(flags.out, "heldout.jsonl");
    const lengths = { instructionWords: 24, outputWords: 3 };
    writeSyntheticJsonl(trainFile, generateSynthetic({ examples: flags.examples, seed: 1, ...lengths }));
    writeSyntheticJsonl(
      evalFile,
      generateSynthetic({ examples: Math.min(200, flags.examples), seed: 2, ...lengths }),
    );
    process.stderr.write(
      `demo: ${flags.examples} synthetic examples (~24-word instructions, ~3-word outputs); IT and IM, ${flags.steps} steps each\n`,
    );
    await Promise.all([train("it", flags, trainFile, evalFile), train("im", flags, trainFile, evalFile)]);
    process.stdout.write(
      `\n${"mode".padEnd(6)}${"train output loss".padStart(20)}${"held-out output loss".padStart(23)}${"gap".padStart(9)}\n`,
    );
    for (const mode of ["it", "im"]) {
      const summary = JSON.parse(readFileSync(join(flags.out, mode, "summary.json"), "utf8")) as {
        final_eval: { eval_output_loss: number; train_eval_output_loss: number; overfitting_gap: number };
      };
      const e = summary.final_eval;
      process.stdout.write(
        `${mode.toUpperCase().padEnd(6)}${e.train_eval_output_loss.toFixed(4).padStart(20)}${e.eval_output_loss.toFixed(4).padStart(23)}${e.overfitting_gap.toFixed(4).padStart(9)}\n`,
      );
    }
    process.stdout.write(
      `\nmetrics: ${join(flags.out, "it", "metrics.jsonl")}, ${join(flags.out, "im", "metrics.jsonl")}\n`,
    );
  },
};
