// What `imtrain launch` exits with, and the one line that says why. The job's result is the coordinator's:
// exit 0 only if it exited 0 (it may have recovered from a lost worker). Otherwise the process that failed
// first is named and its status is launch's: a worker killed by OOM at step 8 is the cause; the
// coordinator's "worker lost" exit 2 that follows is the effect.
import { describeEnd as describeProcessEnd, exitStatus, type ProcessEnd } from "./launched-process.js";

export interface EndedProcess {
  readonly name: string;
  readonly end: ProcessEnd;
  readonly endedAtMs: number;
  /** Launch killed it (a worker still up after the coordinator's exit and its grace): not a cause. */
  readonly killedByLaunch: boolean;
}

export interface LaunchOutcome {
  readonly status: number;
  /** For launch's log; undefined when there is nothing to say (everything exited 0). */
  readonly line: string | undefined;
}

function describeEnd(p: EndedProcess): string {
  return `${describeProcessEnd(p.end)}${p.killedByLaunch ? " (stopped by launch)" : ""}`;
}

/**
 * A node of workers only (the coordinator is elsewhere): 0 if every worker exited 0, else the status of the
 * first to fail, named. A worker launch had to stop (it did not drain in time) failed too.
 */
export function workersOutcome(workers: readonly EndedProcess[]): LaunchOutcome {
  const [first] = workers.filter((p) => exitStatus(p.end) !== 0).sort((a, b) => a.endedAtMs - b.endedAtMs);
  if (first === undefined) return { status: 0, line: undefined };
  return { status: exitStatus(first.end), line: `launch: ${first.name} ${describeEnd(first)} first` };
}

/** `coordinator` and the `others` (workers; nats-server if it died) as they ended. */
export function launchOutcome(coordinator: EndedProcess, others: readonly EndedProcess[]): LaunchOutcome {
  const failures = [coordinator, ...others]
    .filter((p) => exitStatus(p.end) !== 0 && !p.killedByLaunch)
    .sort((a, b) => a.endedAtMs - b.endedAtMs);
  const first = failures[0];
  if (exitStatus(coordinator.end) === 0) {
    const lost = failures.map((p) => `${p.name} ${describeEnd(p)}`).join(", ");
    return { status: 0, line: lost === "" ? undefined : `launch: the job finished (${lost} along the way)` };
  }
  if (first === undefined || first === coordinator) {
    return {
      status: exitStatus(coordinator.end),
      line: `launch: the coordinator ${describeEnd(coordinator)}`,
    };
  }
  return {
    status: exitStatus(first.end),
    line: `launch: ${first.name} ${describeEnd(first)} first; the coordinator then ${describeEnd(coordinator)}`,
  };
}
