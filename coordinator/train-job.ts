// `imtrain train`: the job in one process — one rank, no network.
import { selectBackend } from "../shared/backend/select.js";
import type { Log } from "../shared/data/load.js";
import type { TrainOptions } from "../shared/options.js";
import { prepareRun } from "../shared/train/prepare.js";
import { Rank } from "../worker/rank.js";
import { runJob, type JobControl, type JobSummary } from "./job.js";
import { LocalRanks } from "./local-ranks.js";

export async function runTrainJob(
  options: TrainOptions,
  log: Log,
  control: JobControl = {},
): Promise<JobSummary> {
  const backend = await selectBackend(options.backend);
  log(`backend ${backend.name}${backend.skipped.length ? ` (skipped: ${backend.skipped.join("; ")})` : ""}`);
  const run = await prepareRun(options, log);
  const ranks = new LocalRanks(new Rank(options, run));
  try {
    return await runJob(options, run, ranks, backend.name, log, control);
  } finally {
    await ranks.close();
  }
}
