// What goes wrong with remote ranks, as errors a user can act on: which worker, which step.
import { UserError } from "../../shared/errors.js";

/** A worker failed, left, went silent, or did not answer in time; the job cannot continue with it. */
export class WorkerLostError extends UserError {
  override readonly name = "WorkerLostError";
  constructor(
    readonly rank: number,
    readonly worker: string,
    readonly reason: string,
  ) {
    super(`worker ${worker} (rank ${rank}) ${reason}`);
  }
}

/** Ranks disagree on their weights: the data-parallel invariant is broken. */
export class ChecksumMismatchError extends UserError {
  override readonly name = "ChecksumMismatchError";
  constructor(
    readonly step: number,
    readonly checksums: readonly number[],
  ) {
    const groups = new Map<number, number[]>();
    checksums.forEach((c, rank) => groups.set(c, [...(groups.get(c) ?? []), rank]));
    const described = [...groups.entries()].map(
      ([c, ranks]) => `ranks ${ranks.join(",")}: ${c.toString(16)}`,
    );
    super(`parameter checksums differ after step ${step} (${described.join("; ")})`);
  }
}

/** A step failed in the ring with no rank lost (a message lost, NATS restarted): re-form the ring and redo. */
export class RingBrokenError extends UserError {
  override readonly name = "RingBrokenError";
  constructor(
    readonly rank: number,
    readonly step: number,
    readonly reason: string,
  ) {
    super(`step ${step + 1} failed in the ring on rank ${rank}: ${reason}`);
  }
}

/** A live rank's reply did not come in time: most likely a lost message. Re-form the ring and redo. */
export class LostReplyError extends UserError {
  override readonly name = "LostReplyError";
  constructor(
    readonly rank: number,
    readonly worker: string,
    readonly reason: string,
  ) {
    super(`worker ${worker} (rank ${rank}) ${reason}`);
  }
}
