// The job's lifecycle, shared by `train` (which skips the states about workers) and the coordinator:
//
//   preparing → waiting-for-workers → running ⇄ recovering (a worker was lost: re-form the ring, redo)
//                                        ↘ salvaging (no recovery possible) → failed     ↘ stopped
export const JOB_STATES = [
  "preparing",
  "waiting-for-workers",
  "running",
  "recovering",
  "salvaging",
  "stopped",
  "failed",
] as const;
export type JobState = (typeof JOB_STATES)[number];
