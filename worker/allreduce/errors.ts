// The error an all-reduce fails with: which rank saw it and, when known, which message (tag) it was about.
import { describeRingTag } from "./tag.js";

export class RingError extends Error {
  override readonly name = "RingError";
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
