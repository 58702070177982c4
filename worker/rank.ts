// A rank's state: its model replica (and frozen reference for KL), optimizer, and the run's examples.
// It knows nothing of networks: the all-reduce is handed to each step.
import { weightsChecksum } from "../shared/model/weights-checksum.js";
import type { Example } from "../shared/data/dataset.js";
import { saveCheckpoint } from "../shared/model/checkpoint.js";
import { Gpt } from "../shared/model/gpt.js";
import type { TrainOptions } from "../shared/options.js";
import type { LossSums } from "../shared/protocol.js";
import { AdamW } from "../shared/train/adamw.js";
import type { PreparedRun } from "../shared/train/prepare.js";
import type { ScheduleOptions } from "../shared/train/schedule.js";
import { scoreExamples, scoreExamplesAsync, type ExampleScore } from "../shared/train/score.js";
import { hasSynchronousReads, throwIfBackendFailed } from "../shared/backend/select.js";
import { BackendError } from "../shared/errors.js";
import { StepBufferLayout } from "../shared/train/step-buffer.js";

function pick(examples: readonly Example[], positions: readonly number[], what: string): Example[] {
  return positions.map((p) => {
    const example = examples[p];
    if (example === undefined) throw new Error(`${what} position ${p} out of range (${examples.length})`);
    return example;
  });
}

/**
 * The worker's eval and checksum commands call `evaluate` and `checksum` synchronously; webgpu reads only
 * asynchronously. Until the worker awaits `evaluateAsync` / `checksumAsync`, they fail here, clearly.
 */
function requireSynchronousReads(what: string): void {
  if (!hasSynchronousReads())
    throw new BackendError(
      "webgpu",
      `a worker cannot ${what} on webgpu yet (the worker's command reads synchronously); imtrain train can`,
    );
}

function lossSums(scores: readonly ExampleScore[]): LossSums {
  return [scores.reduce((a, s) => a + s.outputLossSum, 0), scores.reduce((a, s) => a + s.outputTokens, 0)];
}

export class Rank {
  readonly model: Gpt;
  readonly reference: Gpt | undefined;
  readonly optimizer: AdamW;
  readonly layout: StepBufferLayout;
  readonly schedule: ScheduleOptions;
  readonly padId: number;
  constructor(
    readonly options: TrainOptions,
    readonly run: PreparedRun,
  ) {
    const { config } = run.model;
    const weights = run.model.weights();
    this.model = new Gpt(config, weights);
    this.reference = run.referenceWeights && new Gpt(config, run.referenceWeights, false);
    this.optimizer = new AdamW(this.model.params, options);
    const optimizerState = run.model.checkpoint?.optimizer;
    if (run.resumed && optimizerState) this.optimizer.loadState(optimizerState, run.resumed.step);
    this.layout = new StepBufferLayout(new Map([...this.model.params].map(([name, p]) => [name, p.shape])));
    this.schedule = { ...options, totalSteps: run.totalSteps };
    this.padId = run.tokenizer.eosId;
  }

  /** Optimizer steps applied so far. */
  get completedSteps(): number {
    return this.optimizer.stepCount;
  }

  trainExamples(positions: readonly number[]): Example[] {
    return pick(this.run.train, positions, "train");
  }

  /** Output-token loss sums of held-out and training-subset examples at the given positions. */
  evaluate(heldOut: readonly number[], train: readonly number[]): { heldOut: LossSums; train: LossSums } {
    requireSynchronousReads("evaluate");
    const sums = (examples: Example[]) =>
      lossSums(scoreExamples(this.model, examples, this.options.microBatchSize, this.padId));
    return {
      heldOut: sums(pick(this.run.heldOut, heldOut, "held-out")),
      train: sums(pick(this.run.trainEval, train, "train-eval")),
    };
  }

  /** `evaluate`, read asynchronously (any backend). */
  async evaluateAsync(
    heldOut: readonly number[],
    train: readonly number[],
  ): Promise<{ heldOut: LossSums; train: LossSums }> {
    const sums = async (examples: Example[]) =>
      lossSums(await scoreExamplesAsync(this.model, examples, this.options.microBatchSize, this.padId));
    const result = {
      heldOut: await sums(pick(this.run.heldOut, heldOut, "held-out")),
      train: await sums(pick(this.run.trainEval, train, "train-eval")),
    };
    throwIfBackendFailed();
    return result;
  }

  /** `keep`: how many checkpoints `dir` keeps (a handoff keeps 1). */
  async saveCheckpoint(dir: string, seed: number, keep: number): Promise<void> {
    const step = this.completedSteps;
    const weights = await this.model.read();
    const optimizer = await this.optimizer.state();
    throwIfBackendFailed(); // a GPU that failed may have left zeros: never save them
    await saveCheckpoint(
      dir,
      {
        config: this.model.config,
        weights,
        tokenizer: this.run.tokenizer.name,
        optimizer,
        trainer: { step, seed, tokenizer: this.run.tokenizer.name, trajectory: this.run.trajectory },
      },
      keep,
    );
  }

  /** FNV-1a over every parameter's float32 bits: equal on all ranks iff their weights are bit-identical. */
  checksum(): number {
    requireSynchronousReads("checksum its weights");
    return weightsChecksum(this.model.snapshot());
  }

  /** `checksum`, read asynchronously (any backend). */
  async checksumAsync(): Promise<number> {
    return weightsChecksum(await this.model.read());
  }

  dispose(): void {
    this.model.dispose();
    this.reference?.dispose();
  }
}
