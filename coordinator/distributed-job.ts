// `imtrain coordinator`: the job over NATS. It prepares the same run the workers will (to plan batches and
// eval sets), waits for its workers, then drives the shared job loop. It holds no model: workers compute,
// rank 0 (or the lowest live rank) writes checkpoints into the run directory. Its lifecycle, logged:
//
//   preparing → waiting-for-workers → running → stopped
//                                        ↘ salvaging (a worker was lost) → failed
//   (SIGTERM, or a worker leaving: `running` finishes the step, checkpoints, then `stopped`)
// With --metrics-port it serves the job's metrics; the workers serve their ranks'.
import { randomBytes } from "node:crypto";
import type { Log } from "../shared/data/load.js";
import { UserError } from "../shared/errors.js";
import { connectToNats } from "../shared/nats/connect.js";
import { describeNatsAuth, type NatsConnectionSettings } from "../shared/nats/settings.js";
import type { TrainFlags, TrainOptions } from "../shared/options.js";
import type { DataPlane, JobSpec, WireDtype } from "../shared/protocol.js";
import { prepareRun } from "../shared/train/prepare.js";
import type { Health } from "../shared/metrics/health.js";
import type { MetricsOptions } from "../shared/metrics/options.js";
import { serveMetrics } from "../shared/metrics/serve.js";
import { IMTRAIN_VERSION } from "../shared/version.js";
import { runJob, type JobControl, type JobSummary } from "./job.js";
import { JobMetrics } from "./job-metrics.js";
import { stepRecord } from "./job-records.js";
import { appendCheckpointLine, appendStepLine } from "./metrics-file.js";
import type { JobState } from "./job-state.js";
import { LostReplyError, RemoteRanks, RingBrokenError, WorkerLostError } from "./remote/index.js";
import { claimJob } from "./remote/lease.js";
import { join } from "node:path";

export type CoordinatorState = JobState;

export interface CoordinatorOptions {
  /** The server, credentials and TLS (compiled from the NATS flags). */
  readonly nats: NatsConnectionSettings;
  readonly workers: number;
  /** Job name: the subject prefix, so several jobs can share one NATS server. */
  readonly job: string;
  readonly dataPlane: DataPlane;
  /** The format gradients travel in (sums stay fp32). */
  readonly allreduceDtype: WireDtype;
  readonly checksumEverySteps: number;
  readonly heartbeatMs: number;
  /** A worker whose heartbeats (sent from their own thread) stop this long is lost. */
  readonly heartbeatTimeoutMs: number;
  /** The longest a step's compute may take: bounds replies and ring waits. */
  readonly workerTimeoutMs: number;
  /** Elastic recovery goes on while at least this many workers are left... */
  readonly minWorkers: number;
  /** ...for at most this many recoveries. */
  readonly maxRestarts: number;
  /** Ranks may run on different backends (refused by default: their checksums would not match). */
  readonly allowMixedBackends: boolean;
  /** Fewer than minWorkers left: how long recovery waits for replacements (0: it gives up at once). */
  readonly replacementTimeoutMs: number;
  readonly joinTimeoutMs: number;
  readonly metrics: MetricsOptions;
}

/** The train flags a worker compiles itself (yargs' camelCase keys; aliases and CLI internals dropped). */
export function workerFlags(flags: TrainFlags): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(flags).filter(
      // The NATS flags stay here: the spec travels over NATS to every worker, and may hold secrets.
      ([key, value]) =>
        !key.includes("-") &&
        !key.startsWith("nats") &&
        !["_", "$0", "config"].includes(key) &&
        value !== undefined,
    ),
  );
}

export async function runCoordinator(
  train: TrainOptions,
  flags: TrainFlags,
  options: CoordinatorOptions,
  log: Log,
  control: Omit<JobControl, "metrics"> = {},
): Promise<JobSummary> {
  const served = await serveMetrics(
    options.metrics,
    options.job,
    {
      version: IMTRAIN_VERSION,
      backend: "",
      device: "",
      adapter: "",
      model: train.model,
      role: "coordinator",
      rank: "",
    },
    log,
  );
  const metrics = served && new JobMetrics(served.registry, served.process);
  try {
    const summary = await coordinate(train, flags, options, log, control, metrics, served?.health);
    served?.health.stopping("job finished");
    return summary;
  } catch (error) {
    served?.health.failed((error as Error).message);
    throw error;
  } finally {
    await served?.close();
  }
}

async function coordinate(
  train: TrainOptions,
  flags: TrainFlags,
  options: CoordinatorOptions,
  log: Log,
  control: Omit<JobControl, "metrics">,
  metrics: JobMetrics | undefined,
  health: Health | undefined,
): Promise<JobSummary> {
  const nc = await connectToNats(options.nats, { name: `imtrain-coordinator-${options.job}` });
  let state: CoordinatorState = "preparing";
  const enter = (next: CoordinatorState) => {
    log(`coordinator: ${state} → ${next}`);
    state = next;
    metrics?.enter(next);
  };
  log(`coordinator for job "${options.job}" on ${options.nats.url} (${describeNatsAuth(options.nats.auth)})`);
  // Before anything else: a second coordinator for the job would drive its workers into two trajectories.
  const lease = await claimJob(nc, options.job).catch(async (error: unknown) => {
    await nc.close();
    throw error;
  });
  const run = await prepareRun(train, log).catch(async (error: unknown) => {
    lease.release();
    await nc.close();
    throw error;
  });
  const spec: JobSpec = {
    job: options.job,
    // The run directory as this coordinator resolved it (a default is not recomputed by each worker).
    flags: { ...workerFlags(flags), out: train.outDir },
    totalSteps: run.totalSteps,
    dataPlane: options.dataPlane,
    allreduceDtype: options.allreduceDtype,
    checksumEverySteps: options.checksumEverySteps,
    heartbeatMs: options.heartbeatMs,
    coordinatorTimeoutMs: options.heartbeatTimeoutMs,
    ringMessageTimeoutMs: options.workerTimeoutMs,
    ringToken: randomBytes(32).toString("hex"),
  };
  let ranks: RemoteRanks | undefined;
  // A worker leaving (SIGTERM) stops the job like a SIGTERM here: after the step, with a checkpoint.
  const stop = new AbortController();
  control.signal?.addEventListener("abort", () => stop.abort(), { once: true });
  stop.signal.addEventListener("abort", () => health?.stopping("stopping after this step"), { once: true });
  let outcome = "job finished";
  let restarts = 0;
  /** Why the last recovery failed, for the job's final error. */
  let recoveryFailure: string | undefined;
  let failed = false;
  try {
    enter("waiting-for-workers");
    ranks = await RemoteRanks.gather(
      nc,
      {
        job: options.job,
        workers: options.workers,
        spec,
        dataFingerprint: run.dataFingerprint,
        joinTimeoutMs: options.joinTimeoutMs,
        workerTimeoutMs: options.workerTimeoutMs,
        heartbeatTimeoutMs: options.heartbeatTimeoutMs,
        completedSteps: run.resumed?.step ?? 0,
        keepCheckpoints: train.keepCheckpoints,
        allowMixedBackends: options.allowMixedBackends,
        ...(metrics ? { events: metrics } : {}),
      },
      log,
    );
    ranks.onLeaving = () => stop.abort();
    enter("running");
    const gathered = ranks;
    const summary = await runJob(train, run, ranks, () => gathered.computeSummary(), log, {
      ...control,
      signal: stop.signal,
      checksumEverySteps: options.checksumEverySteps,
      replyTimeoutMs: Math.max(10_000, options.workerTimeoutMs),
      recover: async (error) => {
        const recoverable =
          error instanceof WorkerLostError ||
          error instanceof RingBrokenError ||
          error instanceof LostReplyError;
        if (!recoverable || ranks === undefined || restarts >= options.maxRestarts) return false;
        restarts++;
        enter("recovering");
        try {
          await ranks.recover({
            minWorkers: options.minWorkers,
            replacementTimeoutMs: options.replacementTimeoutMs,
            handoffDir: join(train.outDir, "handoff"),
            seed: train.seed,
            timeoutMs: Math.max(10_000, options.workerTimeoutMs),
          });
        } catch (recoveryError) {
          recoveryFailure = (recoveryError as Error).message;
          log(`recovery ${restarts} failed: ${recoveryFailure}`);
          return false;
        }
        enter("running");
        return true;
      },
      ...(metrics ? { metrics } : {}),
    });
    enter("stopped");
    return summary;
  } catch (error) {
    outcome = `job failed: ${(error as Error).message}`;
    failed = true;
    const interrupted =
      error instanceof WorkerLostError || error instanceof RingBrokenError || error instanceof LostReplyError;
    if (interrupted && ranks) {
      enter("salvaging");
      const saved = await ranks
        .salvage(join(train.outDir, "checkpoint"), train.seed, Math.max(10_000, options.workerTimeoutMs))
        .catch((salvageError: unknown) => {
          log(`could not save a checkpoint: ${(salvageError as Error).message}`);
          return undefined;
        });
      if (saved !== undefined) {
        const metricsPath = join(train.outDir, "metrics.jsonl");
        if (saved.applied) {
          // Applied by the ranks that got its last ring message before the loss: on record like any step.
          const { applied } = saved;
          const seconds = applied.rankPhases.reduce(
            (sum, p) => sum + p.data + p.forward_backward + p.allreduce + p.optimizer,
            0,
          );
          const record = stepRecord(run, applied.step + 1, applied, seconds);
          appendStepLine(metricsPath, record);
          metrics?.step(record);
        }
        appendCheckpointLine(metricsPath, saved.checkpoint);
        metrics?.checkpoint(saved.checkpoint);
        enter("failed");
        throw new UserError(
          `${ranks.explainFailure(error, recoveryFailure)}; saved the ${saved.checkpoint.step} completed steps: continue with --resume ${train.outDir}`,
          { cause: error },
        );
      }
    }
    enter("failed");
    throw error;
  } finally {
    await ranks?.close(outcome, failed);
    lease.release();
    await nc.drain().catch(() => undefined);
  }
}
