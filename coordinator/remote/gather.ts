// Collecting one reply of a kind from each of a set of ranks, with a deadline: a reply lost on the way
// (core NATS is at-most-once) must fail the wait by name, never hang it. A gather is keyed by its reply
// type and key (the step, an eval's request id, or a ring's epoch), so a late or duplicated reply finds no gather and is
// reported as unexpected by whoever offers it.
import type { WorkerMessage } from "../../shared/protocol.js";

export type Reply = Extract<
  WorkerMessage,
  {
    type:
      | "ready"
      | "ringReady"
      | "regrouped"
      | "adopted"
      | "stepDone"
      | "evalDone"
      | "checkpointDone"
      | "aborted";
  }
>;

export function replyKey(message: Reply): number {
  switch (message.type) {
    case "stepDone":
      return message.step;
    case "evalDone":
      return message.requestId;
    case "ringReady":
    case "regrouped":
      return message.epoch;
    case "adopted":
      return message.completedSteps;
    case "checkpointDone":
      return message.step;
    default:
      return 0;
  }
}

export class Gather<T extends Reply> {
  readonly replies = new Map<number, T>();
  readonly done: Promise<Map<number, T>>;
  private settle!: (value: Map<number, T>) => void;
  private reject!: (error: Error) => void;
  private timer: NodeJS.Timeout | undefined;
  private settled = false;

  constructor(
    readonly type: Reply["type"],
    readonly key: number,
    readonly ranks: ReadonlySet<number>,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.settle = resolve;
      this.reject = reject;
    });
    // Callers await `done`; a failure before they do must not count as unhandled.
    this.done.catch(() => undefined);
  }

  /** Fails the gather after `ms` with the error `late(ranks that have not replied)` makes. */
  deadline(ms: number, late: (missing: number[]) => Error): this {
    this.timer = setTimeout(() => {
      const missing = [...this.ranks].filter((rank) => !this.replies.has(rank));
      this.fail(late(missing));
    }, ms);
    this.timer.unref();
    return this;
  }

  /** True if the message was one this gather waits for; a repeat from a rank that has replied is not. */
  offer(rank: number, message: T): boolean {
    if (this.settled || !this.ranks.has(rank) || this.replies.has(rank)) return false;
    if (message.type !== this.type || replyKey(message) !== this.key) return false;
    this.replies.set(rank, message);
    if (this.replies.size === this.ranks.size) this.finish(() => this.settle(this.replies));
    return true;
  }

  fail(error: Error): void {
    this.finish(() => this.reject(error));
  }

  get isSettled(): boolean {
    return this.settled;
  }

  private finish(how: () => void): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer) clearTimeout(this.timer);
    how();
  }
}
