// Incoming ring chunks held by tag until the all-reduce asks for them: a neighbour may run a step (or an
// exchange) ahead, and a transport may reorder, so chunks often arrive before anyone waits for them.
import type { RingChunk } from "../../shared/protocol.js";

interface Waiter {
  resolve(chunk: RingChunk): void;
  reject(error: Error): void;
}

export class RingMailbox {
  private readonly held = new Map<number, RingChunk[]>();
  private readonly waiters = new Map<number, Waiter>();
  private failure: Error | undefined;

  /** The error the mailbox failed with, if it did. */
  get error(): Error | undefined {
    return this.failure;
  }

  deliver(chunk: RingChunk): void {
    const waiter = this.waiters.get(chunk.tag);
    if (waiter !== undefined) {
      this.waiters.delete(chunk.tag);
      waiter.resolve(chunk);
      return;
    }
    const chunks = this.held.get(chunk.tag);
    if (chunks === undefined) this.held.set(chunk.tag, [chunk]);
    else chunks.push(chunk);
  }

  /**
   * The next chunk of `tag`, in arrival order. Chunks already held are handed out even after a failure (the
   * link may close right after its last message); only waiting for one that never comes rejects.
   */
  next(tag: number): Promise<RingChunk> {
    const chunks = this.held.get(tag);
    const chunk = chunks?.shift();
    if (chunk !== undefined) {
      if (chunks?.length === 0) this.held.delete(tag);
      return Promise.resolve(chunk);
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.waiters.has(tag))
      return Promise.reject(new Error(`ring mailbox: tag ${tag} is already awaited`));
    return new Promise((resolve, reject) => this.waiters.set(tag, { resolve, reject }));
  }

  /** Forgets chunks of `tag` nobody will ask for (the receiver failed part way). */
  discard(tag: number): void {
    this.held.delete(tag);
  }

  /** Rejects every waiter, and every later wait that finds nothing held; the first error sticks. */
  fail(error: Error): void {
    this.failure ??= error;
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const waiter of waiters) waiter.reject(this.failure);
  }
}
