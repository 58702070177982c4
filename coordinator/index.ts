// coordinator/: the job — plan, eval, checkpoints, metrics.
export { runJob, type JobControl, type JobSummary } from "./job.js";
export { runTrainJob } from "./train-job.js";
export { LocalRanks } from "./local-ranks.js";
export { addSums, type RankGroup } from "./rank-group.js";
export { MetricsFile } from "./metrics-file.js";
export { Progress } from "./progress.js";
