import { fileURLToPath } from "node:url";
import type { Argv, CommandModule } from "yargs";
import { freePorts } from "../../coordinator/free-ports.js";
import { launch, type LaunchMetrics, type LaunchSignals } from "../../coordinator/launch.js";
import { hostname } from "node:os";
import { parseDevice } from "../../shared/backend/device.js";
import { backendDeviceMismatch, type BackendName } from "../../shared/backend/select.js";
import { launchDeadlines } from "../../coordinator/launch-deadlines.js";
import { OptionError } from "../../shared/errors.js";
import { compileMetricsOptions, type MetricsOptions } from "../../shared/metrics/options.js";
import { compileTrainOptions } from "../../shared/options.js";
import { coordinatorFlags, peakFlopsFlag } from "../flags.js";
import { compileLaunchNats, NATS_SECURITY_FLAGS, natsSecurityFlags } from "../nats-flags.js";
import { LAUNCH_DEVICES_HELP, localWorkerDevices } from "../launch-devices.js";
import { camelCase } from "../raw-args.js";
import { openRunDir, runDirName, startRunDir } from "../run-dir.js";
import type { CoordinatorFlags } from "./coordinator.js";

interface LaunchFlags extends Omit<CoordinatorFlags, "nats" | "workers" | "data"> {
  nats?: string;
  devices: string;
  coordinator: boolean;
  /** The job's worker count (the coordinator's --workers); by default one per local device listed. */
  workers?: number;
  data?: string;
}

const CLI_PATH = fileURLToPath(new URL("../main.js", import.meta.url));

/** Flags launch consumes itself (each takes a value) rather than forwarding to the coordinator. */
const LAUNCH_ONLY = [
  ...["nats", "devices", "coordinator", "metrics-port", "metrics-host", "metrics-linger-s", "peak-tflops"],
  // Compiled here and handed to the children in their environment, where ps does not show them.
  ...NATS_SECURITY_FLAGS,
];

/** The command line after "launch", minus the flags launch itself consumes. */
export function forwardedArgs(args: readonly string[]): string[] {
  const names = new Set(LAUNCH_ONLY.flatMap((flag) => [flag, camelCase(flag)]));
  const forwarded: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const match = /^--([^=]+)(=.*)?$/.exec(arg);
    if (match && names.has(match[1] ?? "")) {
      if (match[2] === undefined) i++; // "--flag value": skip the value too
    } else forwarded.push(arg);
  }
  return forwarded;
}

/** --metrics-port P: the coordinator gets P, worker r gets P+1+r; 0: free ports for all. */
async function launchMetrics(options: MetricsOptions, workers: number): Promise<LaunchMetrics | undefined> {
  if (options.port === undefined) return undefined;
  if (options.port + workers > 65535)
    throw new OptionError(
      "metrics-port",
      `${options.port} + ${workers} workers runs past port 65535; choose a lower port (or 0 for free ports)`,
    );
  const ports =
    options.port === 0
      ? await freePorts(options.host, workers + 1)
      : Array.from({ length: workers + 1 }, (_, i) => (options.port ?? 0) + i);
  return {
    host: options.host,
    coordinatorPort: ports[0] ?? 0,
    workerPorts: ports.slice(1),
    peakTflops: options.peakTflops,
    lingerS: options.lingerMs / 1000,
  };
}

/**
 * Launch's own signal handling rather than stopOnSignals: launch must outlive the first signal until its
 * children have drained and NATS has stopped, and the second must kill them before launch exits. SIGHUP
 * (the terminal closed) drains too: the children are in their own process groups and would not get it.
 */
export function launchSignals(log: (line: string) => void): LaunchSignals {
  const drain = new AbortController();
  const kill = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (drain.signal.aborted) return kill.abort(signal);
    log(`\nlaunch: ${signal}: the job stops after this step with a checkpoint (again to kill it now)`);
    drain.abort(signal);
  };
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) process.on(signal, onSignal);
  return { drain: drain.signal, kill: kill.signal };
}

export const launchCommand: CommandModule<object, LaunchFlags> = {
  command: "launch",
  describe: "One node: start a coordinator and N workers (and NATS if none is given), like torchrun",
  builder: (yargs: Argv) =>
    // --data and --workers are checked in the handler: a node of workers only needs neither.
    natsSecurityFlags(peakFlopsFlag(coordinatorFlags(yargs, false)))
      .option("nats", {
        type: "string",
        describe:
          "NATS URL, or 'embedded' for the in-process bus; default $NATS_URL, else nats-server from the PATH, else the in-process bus",
      })
      .option("devices", {
        type: "string",
        default: "cpu",
        describe: `The local workers' devices, one process each: ${LAUNCH_DEVICES_HELP}`,
      })
      .option("coordinator", {
        type: "boolean",
        default: true,
        describe:
          "Start the job's coordinator here (--no-coordinator: only this node's workers, joining the coordinator on another node through --nats URL and --job)",
      })
      .epilogue(
        [
          "With --metrics-port P the coordinator serves metrics on P and worker r on P+1+r (0: free ports); the URLs are printed and written to OUT/metrics-targets.json for Prometheus.",
          "Several nodes: on the first, `launch --nats URL --workers TOTAL --devices all …` (the coordinator and a worker per GPU; it waits for the rest); on each other, `launch --no-coordinator --nats URL --job JOB --devices all`.",
        ].join("\n\n"),
      ) as unknown as Argv<LaunchFlags>,
  handler: async (argv) => {
    const devices = await localWorkerDevices(argv.devices, argv.workers);
    // A backend the workers cannot run on their devices: refused before anything is written or started.
    const backend = argv.backend as BackendName;
    for (const device of new Set(devices)) {
      const refusal = backendDeviceMismatch(backend, parseDevice(device, "devices"));
      if (refusal !== undefined)
        throw new OptionError("devices", `${device} for backend ${backend}: ${refusal}`);
    }
    const log = (line: string) => process.stderr.write(line + "\n");
    const nats = compileLaunchNats(argv.nats ?? process.env["NATS_URL"], argv, process.env);
    const metrics = await launchMetrics(compileMetricsOptions(argv), devices.length);
    // A closed terminal or pipe must not kill launch mid-job (its children would be orphaned): write and move on.
    process.stderr.on("error", () => undefined);
    process.stdout.on("error", () => undefined);
    if (!argv.coordinator) {
      if (nats === undefined || nats === "embedded")
        throw new OptionError(
          "nats",
          "--no-coordinator needs the NATS URL of the job's coordinator (--nats or $NATS_URL)",
        );
      const status = await launch(
        {
          cliPath: CLI_PATH,
          workerDevices: devices,
          // Unique in the job: other nodes' workers are w0, w1, … too.
          workerNamePrefix: `${hostname()}-w`,
          nats,
          coordinatorArgs: undefined,
          job: argv.job,
          deadlines: launchDeadlines(argv.workerTimeoutMs, argv.heartbeatMs),
          printSummary: false,
          outDir: undefined,
          ...(metrics ? { metrics } : {}),
        },
        log,
        launchSignals(log),
      );
      process.exit(status);
    }
    if (argv.data === undefined)
      throw new OptionError(
        "data",
        "required: launch starts the job's coordinator here (--no-coordinator starts only workers)",
      );
    const workers = argv.workers ?? devices.length;
    if (workers < devices.length)
      throw new OptionError(
        "workers",
        `${workers} is fewer than the ${devices.length} local workers --devices ${argv.devices} asks for`,
      );
    if (workers > devices.length)
      log(
        `launch: ${devices.length} workers here; the coordinator waits for ${workers - devices.length} more (launch --no-coordinator --job ${argv.job} on the other nodes)`,
      );
    const runDir = await openRunDir(argv, runDirName("launch", argv.job));
    // Fail here, once, on bad flags rather than in N+1 processes.
    const options = compileTrainOptions({ ...argv, data: argv.data, out: runDir.dir });
    if (!(await startRunDir(runDir, options, log))) return;
    const given = forwardedArgs(process.argv.slice(process.argv.indexOf("launch") + 1));
    const forwarded = argv.workers === undefined ? [...given, "--workers", String(workers)] : given;
    const status = await launch(
      {
        cliPath: CLI_PATH,
        workerDevices: devices,
        workerNamePrefix: "w",
        nats,
        // The fresh directory launch made is the coordinator's too (given last, so it wins).
        coordinatorArgs: runDir.origin === "default" ? [...forwarded, "--out", runDir.dir] : forwarded,
        job: argv.job,
        deadlines: launchDeadlines(argv.workerTimeoutMs, argv.heartbeatMs),
        printSummary: true,
        outDir: runDir.dir,
        ...(metrics ? { metrics } : {}),
      },
      log,
      launchSignals(log),
    );
    // At once: after a second signal the children were killed and nothing is left to wait for.
    process.exit(status);
  },
};
