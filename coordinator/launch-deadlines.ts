// How long `imtrain launch` waits for each stage of a shutdown before it forces it, derived from the
// job's own timing flags so that a job with a short --worker-timeout-ms also shuts down quickly.

export interface LaunchDeadlines {
  /** After a signal asked the coordinator to drain: how long it gets to finish the step, have a worker
   * write the checkpoint and shut the workers down before launch kills it. Also how long a coordinator
   * whose workers have all exited gets to notice and exit on its own. */
  readonly drainTimeoutMs: number;
  /** After the coordinator exited: how long the workers get to exit before launch kills them. */
  readonly workerGraceMs: number;
  /** Between SIGTERM and SIGKILL when launch stops a process itself. */
  readonly killAfterMs: number;
}

/**
 * The coordinator waits up to 2 × worker timeout for a step's replies and up to max(10 s, worker timeout)
 * for a checkpoint, so a drain ends within about 3 × worker timeout; 30 s more covers start-up of the
 * checkpoint and the shutdown. Workers told to shut down exit within a second or two; workers whose
 * coordinator died stop on their own after worker timeout + a heartbeat of silence. Past 15 s a worker
 * without a coordinator has nothing left to do, so it is killed.
 */
export function launchDeadlines(workerTimeoutMs: number, heartbeatMs: number): LaunchDeadlines {
  return {
    drainTimeoutMs: 3 * workerTimeoutMs + 30_000,
    workerGraceMs: Math.min(15_000, Math.max(5_000, workerTimeoutMs + 2 * heartbeatMs)),
    killAfterMs: 5_000,
  };
}
