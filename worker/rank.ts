// A rank's state: its model replica (and frozen reference for KL), optimizer and training examples.
import type { Example } from "../shared/data/dataset.js";
import type { Gpt } from "../shared/model/gpt.js";
import type { TrainOptions } from "../shared/options.js";
import type { AdamW } from "../shared/train/adamw.js";
import type { ScheduleOptions } from "../shared/train/schedule.js";
import type { StepBufferLayout } from "../shared/train/step-buffer.js";

export class Rank {
  constructor(
    readonly options: TrainOptions,
    readonly schedule: ScheduleOptions,
    readonly model: Gpt,
    readonly reference: Gpt | undefined,
    readonly optimizer: AdamW,
    readonly layout: StepBufferLayout,
    private readonly trainExamples: readonly Example[],
    readonly padId: number,
  ) {}

  examplesAt(positions: readonly number[]): Example[] {
    return positions.map((p) => {
      const example = this.trainExamples[p];
      if (example === undefined)
        throw new Error(`example position ${p} out of range (${this.trainExamples.length})`);
      return example;
    });
  }
}
