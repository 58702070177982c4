// The job's view in Prometheus: throughput, progress, utilisation, where each rank's time goes, the
// science (losses by split, the overfitting gap, λ, the data's ratio) and the cluster (workers, losses,
// checkpoints, state). Everything is set from records the job loop already made: a scrape reads values.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { DropReason, ProcessMetrics } from "../shared/metrics/process-metrics.js";
import {
  STEP_PHASES,
  type CheckpointRecord,
  type EvalRecord,
  type MetricsSink,
  type RankPhase,
  type StepRecord,
} from "../shared/metrics/records.js";
import { SECONDS_BUCKETS } from "../shared/metrics/registry.js";
import { JOB_STATES, type JobState } from "./job-state.js";
import type { MembershipEvents } from "./remote/membership.js";

/** What the job knows before its first step. */
export interface JobFacts {
  readonly plannedSteps: number;
  /** Steps already done (a resumed run). */
  readonly completedSteps: number;
  readonly workersExpected: number;
  readonly promptLossWeight: number;
  readonly templateLossWeight: number;
  readonly instructionOutputRatio: number;
  readonly truncatedTokens: number;
  readonly droppedExamples: number;
  readonly checkpointEverySteps: number;
  /** The time schedule (0 = none). */
  readonly checkpointEverySeconds: number;
  /** 0 with --eval-fraction 0 and no --eval-data: there is no held-out loss or gap to report. */
  readonly heldOutExamples: number;
}

export class JobMetrics implements MetricsSink, MembershipEvents {
  private readonly tokens: Counter;
  private readonly lossTokens: Counter;
  private readonly examples: Counter;
  private readonly optimizerSteps: Counter;
  private readonly flops: Counter;
  private readonly stepGauge: Gauge;
  private readonly plannedSteps: Gauge;
  private readonly stepSeconds: Histogram;
  private readonly lastStepTime: Gauge;
  private readonly phaseSeconds: Histogram<"rank" | "phase">;
  private readonly rankCompute: Gauge<"rank">;
  private readonly trainLoss: Gauge;
  private readonly outputLoss: Gauge<"split">;
  private readonly gap: Gauge;
  private readonly gapRises: Gauge;
  private readonly learningRate: Gauge;
  private readonly gradNorm: Gauge;
  private readonly workersJoined: Gauge;
  private readonly workersAlive: Gauge;
  private readonly workersLost: Counter;
  private readonly lastCheckpointStep: Gauge;
  private readonly state: Gauge<"state">;
  private readonly gauges: Record<
    | "workersExpected"
    | "promptLossWeight"
    | "templateLossWeight"
    | "ratio"
    | "truncatedTokens"
    | "droppedExamples"
    | "checkpointEvery"
    | "checkpointEverySeconds",
    Gauge
  >;
  private lastCheckpointMs = Date.now();
  private lastGap: number | undefined;
  private rises = 0;
  private joinedCount = 0;
  private stepsSeen = 0;
  /** The ranks in the ring (by the last step: after a recovery, not simply 0..N-1). */
  private ringRanks: readonly number[] = [0];
  private hasHeldOut = true;
  private readonly lostRanks = new Set<number>();

  constructor(
    registry: Registry,
    private readonly process: ProcessMetrics,
  ) {
    const registers = [registry];
    const counter = (name: string, help: string) => new Counter({ name, help, registers });
    const gauge = (name: string, help: string) => new Gauge({ name, help, registers });
    // A gauge that has no value until an event sets one (prom-client would otherwise report 0, which reads
    // as a real loss, gap or time).
    const eventGauge = (name: string, help: string) => {
      const made = gauge(name, help);
      made.remove();
      return made;
    };
    this.tokens = counter("imtrain_tokens_total", "Real (unpadded) tokens trained on, over all ranks");
    this.lossTokens = counter(
      "imtrain_loss_weighted_tokens_total",
      "Sum of loss weights over trained tokens (output tokens count 1, prompt tokens λ)",
    );
    this.examples = counter("imtrain_examples_total", "Training examples processed");
    this.optimizerSteps = counter(
      "imtrain_optimizer_steps_total",
      "Optimizer steps completed by this process",
    );
    this.flops = counter(
      "imtrain_model_flops_total",
      "Model FLOPs done: 6·params·tokens + 12·layers·width·seq·tokens (PaLM's count; MFU's numerator)",
    );
    this.stepGauge = gauge("imtrain_step", "Optimizer steps completed in this run (resumed steps included)");
    this.plannedSteps = gauge("imtrain_planned_steps", "Optimizer steps the run will make in all");
    this.stepSeconds = new Histogram({
      name: "imtrain_step_seconds",
      help: "Wall seconds of one optimizer step, as the job saw it",
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.lastStepTime = eventGauge(
      "imtrain_last_step_timestamp_seconds",
      "Unix time the last optimizer step completed",
    );
    this.phaseSeconds = new Histogram({
      name: "imtrain_step_phase_seconds",
      help: "Seconds a rank spent per phase: data, forward_backward, allreduce, wait (blocked on the slowest rank), optimizer, eval, checkpoint",
      labelNames: ["rank", "phase"],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.rankCompute = new Gauge({
      name: "imtrain_rank_compute_seconds",
      help: "Each rank's data + forward_backward seconds in the last step; the largest is the straggler",
      labelNames: ["rank"],
      registers,
    });
    this.trainLoss = eventGauge(
      "imtrain_train_loss",
      "The last step's training objective (λ-weighted, plus KL if set)",
    );
    this.outputLoss = new Gauge({
      name: "imtrain_output_loss",
      help: "Output-token loss: split=train the last step's, train_subset and held_out at the last eval",
      labelNames: ["split"],
      registers,
    });
    this.gap = eventGauge("imtrain_overfitting_gap", "held_out − train_subset output loss at the last eval");
    this.gapRises = eventGauge(
      "imtrain_overfitting_gap_rises",
      "Consecutive evals at which the overfitting gap rose",
    );
    this.learningRate = eventGauge("imtrain_learning_rate", "The last step's learning rate");
    this.gradNorm = eventGauge(
      "imtrain_grad_norm",
      "The last step's global gradient L2 norm, before clipping",
    );
    this.workersJoined = gauge("imtrain_workers_joined", "Workers that have joined the job");
    this.workersAlive = gauge("imtrain_workers_alive", "Joined workers not lost");
    this.workersLost = counter("imtrain_workers_lost_total", "Workers lost (failed, silent or gone)");
    this.workersLost.inc(0);
    this.lastCheckpointStep = gauge("imtrain_last_checkpoint_step", "The step the last checkpoint holds");
    this.state = new Gauge({
      name: "imtrain_job_state",
      help: "1 for the job's current state, 0 for the others",
      labelNames: ["state"],
      registers,
    });
    this.gauges = {
      workersExpected: gauge("imtrain_workers_expected", "Workers the job runs with"),
      promptLossWeight: gauge(
        "imtrain_prompt_loss_weight",
        "λ: loss weight on instruction tokens (0 = IT, 1 = IM)",
      ),
      templateLossWeight: gauge(
        "imtrain_template_loss_weight",
        "Loss weight on template and role-marker tokens",
      ),
      ratio: gauge(
        "imtrain_instruction_output_ratio",
        "Mean prompt tokens / mean output tokens of the training data (high: IM tends to help)",
      ),
      truncatedTokens: gauge("imtrain_truncated_tokens", "Tokens cut from training examples by truncation"),
      droppedExamples: gauge(
        "imtrain_dropped_examples",
        "Training examples dropped: no output token left after truncation",
      ),
      checkpointEvery: gauge(
        "imtrain_checkpoint_every_steps",
        "Checkpoint schedule in steps (0 = only at the end)",
      ),
      checkpointEverySeconds: gauge(
        "imtrain_checkpoint_every_seconds",
        "Checkpoint schedule in seconds of training since the last (0 = none)",
      ),
    };
    // The age is the one value that changes between steps: computed when scraped, from a timestamp.
    const lastCheckpoint = () => this.lastCheckpointMs;
    new Gauge({
      name: "imtrain_checkpoint_age_seconds",
      help: "Seconds since the last checkpoint was written (or since the job started, before the first)",
      registers,
      collect() {
        this.set((Date.now() - lastCheckpoint()) / 1000);
      },
    });
    this.enter("preparing");
  }

  /** Facts known once the run is prepared. */
  start(facts: JobFacts): void {
    this.plannedSteps.set(facts.plannedSteps);
    this.stepGauge.set(facts.completedSteps);
    this.gauges.workersExpected.set(facts.workersExpected);
    this.gauges.promptLossWeight.set(facts.promptLossWeight);
    this.gauges.templateLossWeight.set(facts.templateLossWeight);
    this.gauges.ratio.set(facts.instructionOutputRatio);
    this.gauges.truncatedTokens.set(facts.truncatedTokens);
    this.gauges.droppedExamples.set(facts.droppedExamples);
    this.gauges.checkpointEvery.set(facts.checkpointEverySteps);
    this.gauges.checkpointEverySeconds.set(facts.checkpointEverySeconds);
    this.lastCheckpointStep.set(facts.completedSteps);
    this.lastCheckpointMs = Date.now();
    this.ringRanks = Array.from({ length: facts.workersExpected }, (_, rank) => rank);
    this.hasHeldOut = facts.heldOutExamples > 0;
  }

  enter(state: JobState): void {
    for (const s of JOB_STATES) this.state.set({ state: s }, s === state ? 1 : 0);
    if (state === "running") {
      // Ages count from the start of running, so a job stuck before its first step or checkpoint shows.
      this.lastCheckpointMs = Date.now();
      if (this.stepsSeen === 0) this.lastStepTime.set(Date.now() / 1000);
    }
  }

  step(record: StepRecord): void {
    this.tokens.inc(record.tokens);
    this.lossTokens.inc(record.loss_tokens);
    this.examples.inc(record.examples);
    this.optimizerSteps.inc();
    this.stepsSeen++;
    this.flops.inc(record.flops);
    this.stepGauge.set(record.step);
    this.stepSeconds.observe(record.step_s);
    this.lastStepTime.set(Date.now() / 1000);
    const rankAt = (position: number) => record.rank_ids?.[position] ?? position;
    this.ringRanks = record.rank_compute_s.map((_, position) => rankAt(position));
    (record.rank_phase_s ?? []).forEach((phases, position) => {
      for (const phase of STEP_PHASES) this.observePhase(rankAt(position), phase, phases[phase]);
    });
    record.rank_compute_s.forEach((seconds, position) =>
      this.rankCompute.set({ rank: String(rankAt(position)) }, seconds),
    );
    this.trainLoss.set(record.train_loss);
    this.outputLoss.set({ split: "train" }, record.train_output_loss);
    this.learningRate.set(record.lr);
    this.gradNorm.set(record.grad_norm);
  }

  eval(record: EvalRecord): void {
    this.outputLoss.set({ split: "train_subset" }, record.train_eval_output_loss);
    (record.rank_eval_s ?? []).forEach((seconds, position) =>
      this.observePhase(record.rank_ids?.[position] ?? position, "eval", seconds),
    );
    // Without a held-out set the held-out loss is NaN by construction, not divergence: leave it unset.
    if (!this.hasHeldOut) return;
    this.outputLoss.set({ split: "held_out" }, record.eval_output_loss);
    this.gap.set(record.overfitting_gap);
    if (this.lastGap !== undefined) this.rises = record.overfitting_gap > this.lastGap ? this.rises + 1 : 0;
    this.lastGap = record.overfitting_gap;
    this.gapRises.set(this.rises);
  }

  /** One rank writes; every rank stands still meanwhile, so each is charged the checkpoint's time. */
  checkpoint(record: CheckpointRecord): void {
    this.lastCheckpointMs = Date.now();
    this.lastCheckpointStep.set(record.step);
    for (const rank of this.ringRanks) this.observePhase(rank, "checkpoint", record.checkpoint_s);
  }

  async close(): Promise<void> {}

  joined(count: number): void {
    this.joinedCount = count;
    this.workersJoined.set(count);
    this.workersAlive.set(count - this.lostRanks.size);
  }

  lost(rank: number): void {
    if (this.lostRanks.has(rank)) return;
    this.lostRanks.add(rank);
    this.workersLost.inc();
    this.rankCompute.remove({ rank: String(rank) }); // not a straggler: gone
    this.workersAlive.set(this.joinedCount - this.lostRanks.size);
  }

  dropped(reason: DropReason): void {
    this.process.messageDropped(reason);
  }

  private observePhase(rank: number, phase: RankPhase, seconds: number): void {
    this.phaseSeconds.observe({ rank: String(rank), phase }, seconds);
  }
}
