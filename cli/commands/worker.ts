import { hostname } from "node:os";
import type { Argv, CommandModule } from "yargs";
import { OptionError } from "../../shared/errors.js";
import { Worker } from "../../worker/worker-process.js";
import { DEFAULT_NATS_URL } from "../flags.js";

interface WorkerFlags {
  nats: string;
  device: string;
  name: string;
  job: string;
  joinTimeoutMs: number;
  advertiseHost: string;
}

export const workerCommand: CommandModule<object, WorkerFlags> = {
  command: "worker",
  describe: "Join a job as one rank (one per GPU, or per CPU core) and train until it ends",
  builder: (yargs: Argv) =>
    yargs
      .option("nats", {
        type: "string",
        default: DEFAULT_NATS_URL,
        describe: "NATS server URL (default $NATS_URL)",
      })
      .option("device", {
        type: "string",
        default: "cpu",
        describe: "cpu, or gpu:K for the K-th GPU (sets CUDA_VISIBLE_DEVICES)",
      })
      .option("name", {
        type: "string",
        default: `${hostname()}-${process.pid}`,
        describe: "Name in logs and errors",
      })
      .option("job", { type: "string", default: "default", describe: "Job name (the coordinator's --job)" })
      .option("join-timeout-ms", {
        type: "number",
        default: 600_000,
        describe: "How long to wait for a coordinator",
      })
      .option("advertise-host", {
        type: "string",
        default: "127.0.0.1",
        describe:
          "Host other workers reach this one on (ws data plane; use the pod or node IP across machines)",
      }) as unknown as Argv<WorkerFlags>,
  handler: async (argv) => {
    if (argv.device !== "cpu" && !/^gpu:\d+$/.test(argv.device)) {
      throw new OptionError("device", `"${argv.device}" is not cpu or gpu:K`);
    }
    const worker = new Worker(
      {
        natsUrl: argv.nats,
        name: argv.name,
        device: argv.device,
        job: argv.job,
        joinTimeoutMs: argv.joinTimeoutMs,
        advertiseHost: argv.advertiseHost,
      },
      (line) => process.stderr.write(line + "\n"),
    );
    const drain = () => worker.drain();
    process.once("SIGTERM", drain);
    process.once("SIGINT", drain);
    await worker.run();
  },
};
