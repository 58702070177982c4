// coordinator/: the job — plan, eval, checkpoints, metrics.
export { runTrainJob, type JobControl, type JobSummary } from "./train-job.js";
export { splitHeldOut, fixedSubset, type EvalSplit } from "./eval-sets.js";
export { MetricsFile } from "./metrics-file.js";
export { Progress } from "./progress.js";
