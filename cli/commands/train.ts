import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { runTrainJob } from "../../coordinator/train-job.js";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import { trainFlags } from "../flags.js";

export const trainCommand: CommandModule<object, TrainFlags> = {
  command: "train",
  describe: "Train in one process (one rank, no network)",
  builder: (yargs: Argv) => trainFlags(yargs) as unknown as Argv<TrainFlags>,
  handler: async (argv: ArgumentsCamelCase<TrainFlags>) => {
    const options = compileTrainOptions(argv);
    // SIGTERM/SIGINT: finish the step in progress, checkpoint, exit cleanly (a second signal kills).
    const stop = new AbortController();
    const onSignal = (signal: NodeJS.Signals) => {
      process.stderr.write(`\n${signal}: stopping after this step (again to kill)\n`);
      stop.abort();
      process.once(signal, () => process.exit(130));
    };
    process.once("SIGTERM", onSignal);
    process.once("SIGINT", onSignal);
    const summary = await runTrainJob(options, (line) => process.stderr.write(line + "\n"), {
      signal: stop.signal,
    });
    process.stdout.write(JSON.stringify(summary) + "\n");
  },
};
