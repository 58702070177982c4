// An exchange's progress deadline: it expires when nothing moves for timeoutMs, however long the whole
// exchange takes.
//
// Why a progress deadline and not one for the whole exchange: an exchange lasts bytes / bandwidth (minutes
// for a large model on a slow link) plus, for its first chunks, the wait for the slowest rank's compute. A
// deadline for the whole exchange would have to be sized for the largest buffer on the slowest link, and
// would then notice a lost message just as late on a small one. A progress deadline bounds only the silence:
// every chunk received and every send completed restarts it, so a lost message or a lost rank is noticed
// timeoutMs after the last sign of life, whatever the buffer size.

export class ProgressDeadline {
  /** Rejects when the deadline passes or fail() is called; never resolves. Race it against the work. */
  readonly expired: Promise<never>;
  private readonly rejectExpired: (error: Error) => void;
  private readonly timer: NodeJS.Timeout;
  private immediate: NodeJS.Immediate | undefined;
  private progressCount = 0;
  private ended: Error | undefined;

  constructor(
    readonly timeoutMs: number,
    /** The error to expire with, built when it happens (it names what was awaited at that moment). */
    private readonly expiryError: () => Error,
  ) {
    let reject: (error: Error) => void = () => undefined;
    this.expired = new Promise<never>((_, rejectPromise) => (reject = rejectPromise));
    // Whoever races it observes the rejection; if nobody does any more, it must not be an unhandled one.
    this.expired.catch(() => undefined);
    this.rejectExpired = reject;
    this.timer = setTimeout(() => this.onTimer(), timeoutMs);
  }

  /** Something moved: restart the clock (this re-arms the timer even if it has just fired). */
  progress(): void {
    if (this.ended !== undefined) return;
    this.progressCount++;
    this.timer.refresh();
  }

  /** Fails now with `error` (an abort, or the ring failed elsewhere); the first ending sticks. */
  fail(error: Error): void {
    if (this.ended !== undefined) return;
    this.end(error);
    this.rejectExpired(error);
  }

  /** Stops the clock for good: the exchange is over. No timer is left behind. */
  clear(): void {
    if (this.ended === undefined) this.end(new Error("the exchange is over"));
  }

  /** Throws what it ended with, once it has: work that outlives its exchange stops at its next await. */
  throwIfEnded(): void {
    if (this.ended !== undefined) throw this.ended;
  }

  private end(error: Error): void {
    this.ended = error;
    clearTimeout(this.timer);
    if (this.immediate !== undefined) clearImmediate(this.immediate);
  }

  private onTimer(): void {
    // A loop busy past the deadline may have chunks waiting in its sockets: let one round of I/O deliver them
    // (setImmediate runs after the poll phase) before calling the exchange stalled.
    const seen = this.progressCount;
    this.immediate = setImmediate(() => {
      this.immediate = undefined;
      if (this.ended === undefined && this.progressCount === seen) this.fail(this.expiryError());
    });
  }
}
