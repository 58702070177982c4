// The job loop, the same for one process and for N workers: for each step, plan the global batch, split
// it among the ranks, step, record; evaluate and checkpoint on schedule; write metrics and the summary.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setImmediate as nextTurn } from "node:timers/promises";
import type { Log } from "../shared/data/load.js";
import type { EvalRecord, MetricsSink, StepRecord } from "../shared/metrics/records.js";
import type { TrainOptions } from "../shared/options.js";
import type { TerminalStyle } from "../shared/terminal.js";
import { assignToRanks, splitEvenly } from "../shared/train/plan.js";
import type { PreparedRun } from "../shared/train/prepare.js";
import type { JobMetrics } from "./job-metrics.js";
import {
  evalRecord,
  jobFacts,
  jobSummary,
  stepRecord,
  type ComputeSummary,
  type JobSummary,
} from "./job-records.js";
import { MetricsFile } from "./metrics-file.js";
import { Progress } from "./progress.js";
import { secondsSince, type RankGroup } from "./rank-group.js";

export type { JobSummary } from "./job-records.js";

export interface JobControl {
  /** Aborting stops the job after the step in progress, with a checkpoint (SIGTERM, preemption). */
  readonly signal?: AbortSignal;
  readonly onStep?: (record: StepRecord) => void;
  /** Prometheus, beside metrics.jsonl. */
  readonly metrics?: JobMetrics;
  /** Compare rank checksums every K steps (and at the end); 0 = only at the end. */
  readonly checksumEverySteps?: number;
  /** How progress is drawn on stderr, decided when the command started (default: from stderr itself). */
  readonly terminal?: TerminalStyle;
  /**
   * Called when a step, eval or checkpoint failed: true once the ranks are ready to redo it (a lost rank
   * was dropped from the ring), false to fail the job with that error.
   */
  readonly recover?: (error: unknown) => Promise<boolean>;
  /** How long recovery waits on the ranks (the worker timeout); for bringing in replacements. */
  readonly replyTimeoutMs?: number;
}

export async function runJob(
  options: TrainOptions,
  run: PreparedRun,
  ranks: RankGroup,
  /** Read when the job ends: a distributed job's ranks may have changed. */
  compute: () => ComputeSummary,
  log: Log,
  control: JobControl = {},
): Promise<JobSummary> {
  const started = performance.now();
  const { totalSteps, plan } = run;
  const startStep = run.resumed?.step ?? 0;
  mkdirSync(options.outDir, { recursive: true });
  const sinks: MetricsSink[] = [new MetricsFile(join(options.outDir, "metrics.jsonl"), run.resumed?.step)];
  if (control.metrics) sinks.push(control.metrics);
  control.metrics?.start(jobFacts(options, run, ranks.worldSize));
  const progress = new Progress(totalSteps, startStep, control.terminal ? { style: control.terminal } : {});
  if (startStep > 0) log(`resuming at step ${startStep} of ${totalSteps}`);
  const lengthOf = (position: number) => run.train[position]?.ids.length ?? 0;
  const checksumEvery = control.checksumEverySteps ?? 0;

  /** Runs `attempt` until it succeeds, recovering between tries while the group can. */
  const withRecovery = async <T>(attempt: () => Promise<T>): Promise<T> => {
    for (;;) {
      try {
        return await attempt();
      } catch (error) {
        if (!(await control.recover?.(error))) throw error;
      }
    }
  };
  const evaluate = async (step: number): Promise<EvalRecord> => {
    const evalStarted = performance.now();
    const sums = await withRecovery(() =>
      ranks.evaluate(
        splitEvenly(run.heldOut.length, ranks.worldSize),
        splitEvenly(run.trainEval.length, ranks.worldSize),
      ),
    );
    const record = evalRecord(step, sums, secondsSince(evalStarted));
    for (const sink of sinks) sink.eval(record);
    progress.eval(record);
    return record;
  };
  let lastCheckpointMs = performance.now();
  const checkpoint = async (step: number) => {
    const saved = await withRecovery(() =>
      ranks.checkpoint(join(options.outDir, "checkpoint"), options.seed),
    );
    lastCheckpointMs = performance.now();
    for (const sink of sinks) sink.checkpoint({ step, checkpoint_s: saved.seconds, rank: saved.rank });
  };

  let last: StepRecord | undefined;
  let lastEval: EvalRecord | undefined;
  let tokens = 0;
  let trainingSeconds = 0;
  try {
    for (let step = startStep; step < totalSteps; step++) {
      const stepStarted = performance.now();
      const done = step + 1;
      const isLast = done === totalSteps;
      const compareChecksums = isLast || (checksumEvery > 0 && done % checksumEvery === 0);
      await ranks.admitReplacements?.(
        join(options.outDir, "handoff"),
        options.seed,
        control.replyTimeoutMs ?? 60_000,
      );
      // After a recovery the same global batch is split over the ranks that are left.
      const group = await withRecovery(() =>
        ranks.step(step, assignToRanks(plan.globalBatch(step), lengthOf, ranks.worldSize), compareChecksums),
      );
      last = stepRecord(run, done, group, secondsSince(stepStarted));
      tokens += last.tokens;
      trainingSeconds += last.step_s;
      for (const sink of sinks) sink.step(last);
      progress.step(last);
      control.onStep?.(last);

      const stopping = control.signal?.aborted === true && !isLast;
      if (isLast || (options.evalEverySteps > 0 && done % options.evalEverySteps === 0))
        lastEval = await evaluate(done);
      const onSchedule =
        (options.checkpointEverySteps > 0 && done % options.checkpointEverySteps === 0) ||
        (options.checkpointEveryMs > 0 && performance.now() - lastCheckpointMs >= options.checkpointEveryMs);
      if (isLast || stopping || onSchedule) await checkpoint(done);
      if (stopping) {
        progress.note(
          `stopped after step ${done}; checkpoint saved: continue with --resume ${options.outDir}`,
        );
        break;
      }
      // A step's compute is synchronous: let the event loop run between steps, so signals are handled and
      // /metrics is collected while `train` runs.
      await nextTurn();
    }
  } finally {
    progress.close();
    for (const sink of sinks) await sink.close();
  }
  const summary = jobSummary(options, run, ranks.worldSize, compute(), {
    completedSteps: last?.step ?? startStep,
    last,
    lastEval,
    tokens,
    trainingSeconds,
    elapsedSeconds: secondsSince(started),
  });
  writeFileSync(
    join(options.outDir, "summary.json"),
    JSON.stringify({ ...summary, options }, null, 2) + "\n",
  );
  return summary;
}
