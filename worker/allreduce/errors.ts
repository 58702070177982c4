// The errors an all-reduce fails with: which rank saw it and, when known, which message (tag) it was about.
import { describeRingTag } from "./tag.js";

export class RingError extends Error {
  override readonly name: string = "RingError";
  constructor(
    readonly rank: number,
    /** The packed tag of the message at fault, when the message could be read that far. */
    readonly tag: number | undefined,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `all-reduce on rank ${rank}${tag === undefined ? "" : `, ${describeRingTag(tag)}`}: ${reason}`,
      options,
    );
  }
}

/**
 * An exchange made no progress for `timeoutMs`: no chunk came from the previous rank, or a send to the next
 * rank did not complete. A lost message or a lost (or stalled) rank; `peer` is the rank waited on.
 */
export class RingTimeoutError extends RingError {
  override readonly name: string = "RingTimeoutError";
  constructor(
    rank: number,
    tag: number,
    readonly peer: number,
    readonly timeoutMs: number,
    reason: string,
  ) {
    super(rank, tag, reason);
  }
}
