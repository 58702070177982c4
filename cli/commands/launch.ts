import { fileURLToPath } from "node:url";
import type { Argv, CommandModule } from "yargs";
import { launch } from "../../coordinator/launch.js";
import { compileTrainOptions } from "../../shared/options.js";
import { coordinatorFlags } from "../flags.js";
import { stopOnSignals } from "../signals.js";
import type { CoordinatorFlags } from "./coordinator.js";

interface LaunchFlags extends Omit<CoordinatorFlags, "nats"> {
  nats?: string;
  devices: string;
}

const CLI_PATH = fileURLToPath(new URL("../main.js", import.meta.url));

/** The command line after "launch", minus the flags launch itself consumes. */
function forwardedArgs(): string[] {
  const args = process.argv.slice(process.argv.indexOf("launch") + 1);
  const forwarded: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    if (arg === "--nats" || arg === "--devices") i++;
    else if (!arg.startsWith("--nats=") && !arg.startsWith("--devices=")) forwarded.push(arg);
  }
  return forwarded;
}

export const launchCommand: CommandModule<object, LaunchFlags> = {
  command: "launch",
  describe: "One node: start a coordinator and N workers (and NATS if none is given), like torchrun",
  builder: (yargs: Argv) =>
    coordinatorFlags(yargs)
      .option("nats", {
        type: "string",
        describe:
          "NATS URL, or 'embedded' for the in-process bus; default $NATS_URL, else nats-server from the PATH, else the in-process bus",
      })
      .option("devices", {
        type: "string",
        default: "cpu",
        choices: ["cpu", "gpu"],
        describe: "cpu: every worker on CPU; gpu: worker i on GPU i",
      }) as unknown as Argv<LaunchFlags>,
  handler: async (argv) => {
    compileTrainOptions(argv); // fail here, once, on bad flags rather than in N+1 processes
    const status = await launch(
      {
        cliPath: CLI_PATH,
        workers: argv.workers,
        natsUrl: argv.nats ?? process.env["NATS_URL"],
        coordinatorArgs: forwardedArgs(),
        job: argv.job,
        devices: argv.devices === "gpu" ? "gpu" : "cpu",
        workerGraceMs: 15_000,
        printSummary: true,
      },
      (line) => process.stderr.write(line + "\n"),
      stopOnSignals(),
    );
    process.exitCode = status;
  },
};
