// The job's lifecycle, shared by `train` (which skips the states about workers) and the coordinator:
//
//   preparing → waiting-for-workers → running → stopped
//                                        ↘ salvaging (a worker was lost) → failed
export const JOB_STATES = [
  "preparing",
  "waiting-for-workers",
  "running",
  "salvaging",
  "stopped",
  "failed",
] as const;
export type JobState = (typeof JOB_STATES)[number];
