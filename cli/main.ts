#!/usr/bin/env node
// imtrain's command line: parse → compile options → call one function. User errors print one line
// (exit-on-error.ts); flags come from the command line and an optional --config file (config-file.ts), and
// their values are checked by flag-values.ts before yargs' own validation.
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import { UserError } from "../shared/errors.js";
import { oneLine, reportAndExit } from "./exit-on-error.js";
import { analyzeCommand } from "./commands/analyze.js";
import { coordinatorCommand } from "./commands/coordinator.js";
import { launchCommand } from "./commands/launch.js";
import { workerCommand } from "./commands/worker.js";
import { demoCommand } from "./commands/demo.js";
import { devicesCommand } from "./commands/devices.js";
import { generateCommand } from "./commands/generate.js";
import { masksCommand } from "./commands/masks.js";
import { scoreCommand } from "./commands/score.js";
import { reportCommand } from "./commands/report.js";
import { synthCommand } from "./commands/synth.js";
import { trainCommand } from "./commands/train.js";
import { experimentCommand } from "./commands/experiment.js";
import { configPath, readConfigFile } from "./config-file.js";
import { checkFlagValues, declaredOptions } from "./flag-values.js";
import { joinNegativeNumbers } from "./raw-args.js";

try {
  const args = joinNegativeNumbers(hideBin(process.argv));
  // `experiment --config F` names its grid file, not a file of flags.
  const configFile = args[0] === "experiment" ? undefined : configPath(args);
  const config = configFile === undefined ? undefined : readConfigFile(configFile);
  const parser = yargs(args);
  await parser
    .scriptName("imtrain")
    .usage(
      "$0 <command> [flags]\n\nInstruction tuning with the loss on outputs (IT), or on instructions too (IM).",
    )
    .option("config", {
      type: "string",
      describe:
        "YAML or JSON file of flags, keys spelled like the flags (command-line flags win; paths in it are relative to the file)",
    })
    .config(config?.values ?? {})
    // Before yargs' own validation, so a bad value is named by its flag (or FILE:line) first.
    .middleware((argv) => checkFlagValues(argv, declaredOptions(parser), args, config), true)
    .command(trainCommand)
    .command(launchCommand)
    .command(coordinatorCommand)
    .command(workerCommand)
    .command(demoCommand)
    .command(synthCommand)
    .command(masksCommand)
    .command(analyzeCommand)
    .command(experimentCommand)
    .command(scoreCommand)
    .command(generateCommand)
    .command(reportCommand)
    .command(devicesCommand)
    .demandCommand(1, "name a command")
    .strict()
    .wrap(Math.min(120, process.stdout.columns ?? 100))
    .fail((message, error) => {
      // Thrown by a command or a check: reportAndExit tells the user's errors from ours.
      if (error && error.name !== "YError") throw error;
      // yargs' own complaints (unknown flag, missing value, bad choice) are the user's; they may span lines.
      throw new UserError(`${oneLine(message ?? error?.message ?? "bad command line")} (see --help)`);
    })
    .parseAsync();
} catch (error) {
  reportAndExit(error);
}
