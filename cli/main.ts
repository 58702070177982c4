#!/usr/bin/env node
// imtrain's command line: parse → compile options → call one function. User errors print one line.
import { readFileSync } from "node:fs";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { parse as parseYaml } from "yaml";
import { UserError } from "../shared/errors.js";
import { analyzeCommand } from "./commands/analyze.js";
import { coordinatorCommand } from "./commands/coordinator.js";
import { launchCommand } from "./commands/launch.js";
import { workerCommand } from "./commands/worker.js";
import { demoCommand } from "./commands/demo.js";
import { generateCommand } from "./commands/generate.js";
import { masksCommand } from "./commands/masks.js";
import { scoreCommand } from "./commands/score.js";
import { reportCommand } from "./commands/report.js";
import { synthCommand } from "./commands/synth.js";
import { trainCommand } from "./commands/train.js";

function readConfig(path: string): Record<string, unknown> {
  try {
    const parsed: unknown = parseYaml(readFileSync(path, "utf8"));
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed))
      throw new Error("not a mapping of flags");
    return parsed as Record<string, unknown>;
  } catch (error) {
    throw new UserError(`--config ${path}: ${(error as Error).message}`, { cause: error });
  }
}

function reportAndExit(error: unknown): never {
  if (error instanceof UserError) {
    process.stderr.write(`imtrain: ${error.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`imtrain: internal error: ${(error as Error)?.stack ?? String(error)}\n`);
  process.exit(1);
}

try {
  await yargs(hideBin(process.argv))
    .scriptName("imtrain")
    .usage(
      "$0 <command> [flags]\n\nInstruction tuning with the loss on outputs (IT), or on instructions too (IM).",
    )
    .config("config", "YAML or JSON file of flags (command-line flags win)", readConfig)
    .command(trainCommand)
    .command(launchCommand)
    .command(coordinatorCommand)
    .command(workerCommand)
    .command(demoCommand)
    .command(synthCommand)
    .command(masksCommand)
    .command(analyzeCommand)
    .command(scoreCommand)
    .command(generateCommand)
    .command(reportCommand)
    .demandCommand(1, "name a command")
    .strict()
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .fail((message, error) => {
      if (error) throw error;
      // One line, like every other user error; yargs' own messages may span several.
      process.stderr.write(`imtrain: ${message.replace(/\s*\n\s*/g, " ")} (see --help)\n`);
      process.exit(2);
    })
    .parseAsync();
} catch (error) {
  reportAndExit(error);
}
