// Incoming ring chunks held by tag until the all-reduce asks for them: a neighbour may run a step (or an
// exchange) ahead, and a transport may reorder, so chunks often arrive before anyone waits for them.
//
// The mailbox also recognises chunks nobody will ever ask for, and hands each to `onDrop` instead of
// holding it forever (nothing is dropped silently):
//   stale      a chunk of an exchange this rank has finished. Every chunk of a finished exchange was received
//              exactly once, so this one is a late copy (a transport duplicate, or a copy left over when it
//              finished); holding it would leak, and it must not mix into a later exchange.
//   abandoned  a chunk of an exchange that failed, or one for no running exchange once the ring has failed.
// (The ring itself drops "duplicate": a second copy of a chunk while its exchange still runs.)
//
// Telling a late copy from an early chunk of a future exchange needs each exchange number (mod 2^20) to be
// used once per ring: the ring refuses to run one this mailbox remembers as finished.
import type { RingChunk } from "../../shared/protocol.js";
import { exchangeSlotOf } from "./tag.js";

/** Why the ring dropped a message: a small fixed set, for a metric label. */
export const RING_DROP_REASONS = ["duplicate", "stale", "abandoned", "malformed"] as const;
export type RingDropReason = (typeof RING_DROP_REASONS)[number];

/**
 * How many finished exchanges are remembered, to recognise their late copies. A copy delayed past this many
 * later exchanges would be held as an early chunk (one chunk each: a bounded leak, never a wrong sum, since
 * an exchange number is never reused while remembered and a wrapped slot is 2^20 exchanges away).
 */
const FINISHED_MEMORY = 1024;

interface Waiter {
  resolve(chunk: RingChunk): void;
  reject(error: Error): void;
}

export class RingMailbox {
  private readonly held = new Map<number, RingChunk[]>();
  private readonly waiters = new Map<number, Waiter>();
  /** Exchange slots running now, and the last FINISHED_MEMORY finished ones (oldest first). */
  private readonly running = new Set<number>();
  private readonly finished = new Set<number>();
  private failure: Error | undefined;

  constructor(private readonly onDrop: (reason: RingDropReason, chunk: RingChunk, why: string) => void) {}

  /** The error the mailbox failed with, if it did. */
  get error(): Error | undefined {
    return this.failure;
  }

  /** Chunks received and not yet asked for. */
  get heldChunks(): number {
    let count = 0;
    for (const chunks of this.held.values()) count += chunks.length;
    return count;
  }

  hasFinished(slot: number): boolean {
    return this.finished.has(slot);
  }

  /** An exchange of `slot` starts: its chunks are wanted even after the ring fails (see next()). */
  open(slot: number): void {
    this.running.add(slot);
  }

  /** The exchange of `slot` succeeded: what is still held of it are copies, and so is anything later. */
  finish(slot: number): void {
    this.running.delete(slot);
    this.finished.add(slot);
    if (this.finished.size > FINISHED_MEMORY) {
      const oldest = this.finished.values().next();
      if (oldest.done !== true) this.finished.delete(oldest.value);
    }
    this.dropHeld((tagSlot) => tagSlot === slot, "stale", "a copy left over when its exchange finished");
  }

  /** The exchange of `slot` failed: nobody will read its chunks. */
  abandon(slot: number): void {
    this.running.delete(slot);
    this.dropHeld((tagSlot) => tagSlot === slot, "abandoned", "its exchange failed");
  }

  deliver(chunk: RingChunk): void {
    const slot = exchangeSlotOf(chunk.tag);
    if (this.finished.has(slot))
      return this.onDrop("stale", chunk, "its exchange has finished on this rank (a late copy)");
    if (this.failure !== undefined && !this.running.has(slot))
      return this.onDrop("abandoned", chunk, "the ring has failed");
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
   * link may close right after its last message); only waiting for one that never comes rejects. Waits
   * without a deadline: the ring races each exchange against its ProgressDeadline.
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

  /**
   * Rejects every waiter, and every later wait that finds nothing held; the first error sticks. Chunks of no
   * running exchange are dropped now, and later ones as they come.
   */
  fail(error: Error): void {
    this.failure ??= error;
    const waiters = [...this.waiters.values()];
    this.waiters.clear();
    for (const waiter of waiters) waiter.reject(this.failure);
    this.dropHeld((slot) => !this.running.has(slot), "abandoned", "the ring has failed");
  }

  private dropHeld(matches: (slot: number) => boolean, reason: RingDropReason, why: string): void {
    for (const [tag, chunks] of this.held) {
      if (!matches(exchangeSlotOf(tag))) continue;
      this.held.delete(tag);
      for (const chunk of chunks) this.onDrop(reason, chunk, why);
    }
  }
}
