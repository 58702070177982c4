import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { runTrainJob } from "../../coordinator/train-job.js";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import { trainFlags } from "../flags.js";
import { stopOnSignals } from "../signals.js";

export const trainCommand: CommandModule<object, TrainFlags> = {
  command: "train",
  describe: "Train in one process (one rank, no network)",
  builder: (yargs: Argv) => trainFlags(yargs) as unknown as Argv<TrainFlags>,
  handler: async (argv: ArgumentsCamelCase<TrainFlags>) => {
    const options = compileTrainOptions(argv);
    const summary = await runTrainJob(options, (line) => process.stderr.write(line + "\n"), {
      signal: stopOnSignals(),
    });
    process.stdout.write(JSON.stringify(summary) + "\n");
  },
};
