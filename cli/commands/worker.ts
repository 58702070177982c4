import { hostname } from "node:os";
import { NatsError } from "nats";
import type { Argv, CommandModule } from "yargs";
import { DEVICE_HELP, parseDevice } from "../../shared/backend/device.js";
import { UserError } from "../../shared/errors.js";
import { compileMetricsOptions, type MetricsFlags } from "../../shared/metrics/options.js";
import { serveMetrics } from "../../shared/metrics/serve.js";
import { IMTRAIN_VERSION } from "../../shared/version.js";
import { Worker } from "../../worker/worker-process.js";
import { AUTO_ADVERTISE_HOST, natsHost, routeAddressTo } from "../../worker/advertise-host.js";
import { reportAndExit } from "../exit-on-error.js";
import { DEFAULT_NATS_URL, JOB_OPTION, metricsEndpointFlags, peakFlopsFlag } from "../flags.js";
import { natsSecurityFlags } from "../nats-flags.js";
import { redactNatsUrl } from "../../shared/nats/url.js";
import { compileNatsSettings, type NatsSecurityFlags } from "../../shared/nats/settings.js";

/** A lost NATS connection is an event to report in one line, not a bug to show a stack trace for. */
function asUserError(error: unknown, name: string): unknown {
  if (!(error instanceof NatsError)) return error;
  return new UserError(`${name}: the NATS connection closed (${error.code})`, { cause: error });
}

/**
 * The worker publishes from timers and callbacks, so a connection that closes under it (nats-server
 * stopped, the network cut) throws outside any await. Such errors end the process here, before the
 * wasm backend's own handlers (registered later) rethrow them with a stack: one line, exit 2, like any
 * user error; anything else is our bug and keeps its stack.
 */
function exitOnStrayErrors(name: string): void {
  const exit = (error: unknown) => reportAndExit(asUserError(error, name));
  process.on("uncaughtException", exit);
  process.on("unhandledRejection", exit);
}

interface WorkerFlags extends MetricsFlags, NatsSecurityFlags {
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
    natsSecurityFlags(peakFlopsFlag(metricsEndpointFlags(yargs)))
      .option("nats", {
        type: "string",
        default: DEFAULT_NATS_URL,
        defaultDescription: redactNatsUrl(DEFAULT_NATS_URL), // --help must not show its credentials
        describe: "NATS server URL (default $NATS_URL)",
      })
      .option("device", {
        type: "string",
        default: "cpu",
        describe: `${DEVICE_HELP}; the job's --backend must run on it`,
      })
      .option("name", {
        type: "string",
        default: `${hostname()}-${process.pid}`,
        describe: "Name in logs and errors",
      })
      .option("job", { ...JOB_OPTION, describe: "Job name (the coordinator's --job)" })
      .option("join-timeout-ms", {
        type: "number",
        default: 600_000,
        describe:
          "How long to wait for a coordinator: at start, and after losing one (a coordinator restarted with --resume takes its workers back)",
      })
      .option("advertise-host", {
        type: "string",
        default: AUTO_ADVERTISE_HOST,
        describe:
          "Address other workers reach this one on (ws data plane). auto: the address this node reaches the NATS server from (127.0.0.1 when NATS is on loopback); set the pod or node IP where that is not the one peers reach",
      }) as unknown as Argv<WorkerFlags>,
  handler: async (argv) => {
    parseDevice(argv.device); // fails on a bad value before anything starts
    exitOnStrayErrors(argv.name);
    const metrics = compileMetricsOptions(argv);
    const log = (line: string) => process.stderr.write(line + "\n");
    // Served from the start, so /healthz answers while the worker waits for its coordinator.
    const served = await serveMetrics(
      metrics,
      argv.job,
      {
        version: IMTRAIN_VERSION,
        backend: "",
        device: argv.device,
        adapter: "",
        model: "",
        role: "worker",
        rank: "",
      },
      (line) => log(`${argv.name}: ${line}`),
    );
    const worker = new Worker(
      {
        nats: compileNatsSettings(argv, process.env),
        name: argv.name,
        device: argv.device,
        job: argv.job,
        joinTimeoutMs: argv.joinTimeoutMs,
        advertiseHost:
          argv.advertiseHost === AUTO_ADVERTISE_HOST
            ? await routeAddressTo(natsHost(argv.nats))
            : argv.advertiseHost,
        metrics,
      },
      log,
      served,
    );
    const drain = () => worker.drain();
    process.once("SIGTERM", drain);
    process.once("SIGINT", drain);
    try {
      await worker.run();
    } catch (error) {
      served?.health.failed((error as Error).message);
      throw asUserError(error, argv.name);
    } finally {
      await served?.close();
    }
  },
};
