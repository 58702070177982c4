import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { runTrainJob } from "../../coordinator/train-job.js";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import { trainFlags } from "../flags.js";

export const trainCommand: CommandModule<object, TrainFlags> = {
  command: "train",
  describe: "Train in one process (one rank, no network)",
  builder: (yargs: Argv) => trainFlags(yargs) as unknown as Argv<TrainFlags>,
  handler: async (argv: ArgumentsCamelCase<TrainFlags>) => {
    const summary = await runTrainJob(compileTrainOptions(argv), (line) => process.stderr.write(line + "\n"));
    process.stdout.write(JSON.stringify(summary) + "\n");
  },
};
