import type { ArgumentsCamelCase, Argv, CommandModule } from "yargs";
import { runCoordinator, type CoordinatorOptions } from "../../coordinator/distributed-job.js";
import { OptionError } from "../../shared/errors.js";
import { compileMetricsOptions, type MetricsFlags } from "../../shared/metrics/options.js";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import type { DataPlane, WireDtype } from "../../shared/protocol.js";
import { coordinatorFlags, DEFAULT_NATS_URL } from "../flags.js";
import { natsSecurityFlags } from "../nats-flags.js";
import { redactNatsUrl } from "../../shared/nats/url.js";
import { compileNatsSettings, type NatsSecurityFlags } from "../../shared/nats/settings.js";
import { finishedLine } from "../finished-line.js";
import { openRunDir, runDirName, startRunDir, type RunDirFlags } from "../run-dir.js";
import { writeReportOrSay } from "../run-report.js";
import { terminalStyle } from "../../shared/terminal.js";
import { stopOnSignals } from "../signals.js";

export interface CoordinatorFlags extends TrainFlags, MetricsFlags, NatsSecurityFlags, RunDirFlags {
  nats: string;
  workers: number;
  job: string;
  dataPlane: string;
  allreduceDtype: string;
  checksumEvery: number;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  workerTimeoutMs: number;
  minWorkers: number;
  maxRestarts: number;
  allowMixedBackends: boolean;
  replacementTimeoutMs: number;
  joinTimeoutMs: number;
}

function positiveInt(option: string, value: number): number {
  if (!Number.isInteger(value) || value < 1)
    throw new OptionError(option, `must be a positive integer (got ${value})`);
  return value;
}

function nonNegativeInt(option: string, value: number): number {
  if (!Number.isInteger(value) || value < 0)
    throw new OptionError(option, `must be a non-negative integer (got ${value})`);
  return value;
}

/** Several periods, so one late heartbeat is not a loss. */
function heartbeatTimeout(timeoutMs: number, periodMs: number): number {
  positiveInt("heartbeat-timeout-ms", timeoutMs);
  if (timeoutMs < 3 * periodMs)
    throw new OptionError(
      "heartbeat-timeout-ms",
      `${timeoutMs} must be at least 3 × --heartbeat-ms (${periodMs})`,
    );
  return timeoutMs;
}

export const coordinatorCommand: CommandModule<object, CoordinatorFlags> = {
  command: "coordinator",
  describe: "Run a job over NATS: plan the data, drive N workers, evaluate, checkpoint",
  builder: (yargs: Argv) =>
    natsSecurityFlags(coordinatorFlags(yargs)).option("nats", {
      type: "string",
      default: DEFAULT_NATS_URL,
      defaultDescription: redactNatsUrl(DEFAULT_NATS_URL), // --help must not show its credentials
      describe: "NATS server URL (default $NATS_URL)",
    }) as unknown as Argv<CoordinatorFlags>,
  handler: async (argv: ArgumentsCamelCase<CoordinatorFlags>) => {
    const log = (line: string) => process.stderr.write(line + "\n");
    const runDir = await openRunDir(argv, runDirName("coordinator", argv.job));
    const flags = { ...argv, out: runDir.dir };
    const options = compileTrainOptions(flags);
    const coordinatorOptions: CoordinatorOptions = {
      nats: compileNatsSettings(argv, process.env),
      workers: positiveInt("workers", argv.workers),
      job: argv.job,
      dataPlane: argv.dataPlane as DataPlane,
      allreduceDtype: argv.allreduceDtype as WireDtype,
      checksumEverySteps: Math.max(0, Math.floor(argv.checksumEvery)),
      heartbeatMs: positiveInt("heartbeat-ms", argv.heartbeatMs),
      heartbeatTimeoutMs: heartbeatTimeout(argv.heartbeatTimeoutMs, argv.heartbeatMs),
      minWorkers: positiveInt("min-workers", argv.minWorkers),
      maxRestarts: nonNegativeInt("max-restarts", argv.maxRestarts),
      allowMixedBackends: argv.allowMixedBackends,
      replacementTimeoutMs: nonNegativeInt("replacement-timeout-ms", argv.replacementTimeoutMs),
      workerTimeoutMs: positiveInt("worker-timeout-ms", argv.workerTimeoutMs),
      joinTimeoutMs: positiveInt("join-timeout-ms", argv.joinTimeoutMs),
      metrics: compileMetricsOptions(argv),
    };
    if (!(await startRunDir(runDir, options, log))) return;
    const summary = await runCoordinator(options, flags, coordinatorOptions, log, {
      signal: stopOnSignals(),
      terminal: terminalStyle(process.stderr),
    });
    log(finishedLine(summary, await writeReportOrSay([summary.out_dir], log)));
    process.stdout.write(JSON.stringify(summary) + "\n");
  },
};
