// A fault injector: wraps a RingTransport and, driven by a seeded RNG, drops, delays and duplicates the
// messages it sends, recording each thing it did. A message is dropped with dropProbability; otherwise it is
// sent, plus a second copy with duplicateProbability, and each copy is held back by a uniform delay in
// [0, maxDelayMs] with delayProbability. A dropped or delayed send still resolves at once: to the sender the
// message has left, as on a real network. Delayed copies are sent in the order their timers fire, so delays
// also reorder. close() cancels copies still waiting (they count as lost), so no timer outlives the test.
import { mulberry32 } from "../../shared/random.js";
import { decodeRingMessage, type RingMessage, type RingTransport } from "../../worker/allreduce/transport.js";

export interface FaultPlan {
  readonly seed: number;
  readonly dropProbability?: number;
  readonly duplicateProbability?: number;
  readonly delayProbability?: number;
  /** Upper bound of one delay, in ms. */
  readonly maxDelayMs?: number;
  /** Which messages may be faulted, by their index among this transport's sends (default: all). */
  readonly applies?: (index: number) => boolean;
}

export type FaultKind = "drop" | "duplicate" | "delay";

export interface FaultRecord {
  readonly kind: FaultKind;
  /** Index of the message among this transport's sends. */
  readonly index: number;
  /** The ring tag of the message. */
  readonly tag: number;
  /** When it happened (performance.now(), ms); for a delay, when the copy was held back. */
  readonly atMs: number;
  readonly delayMs?: number;
}

export interface FaultyTransport extends RingTransport {
  /** Everything injected so far, in order. */
  readonly faults: readonly FaultRecord[];
  readonly sent: number;
}

export function faultyTransport(inner: RingTransport, plan: FaultPlan): FaultyTransport {
  const random = mulberry32(plan.seed);
  const dropProbability = plan.dropProbability ?? 0;
  const duplicateProbability = plan.duplicateProbability ?? 0;
  const delayProbability = plan.delayProbability ?? 0;
  const maxDelayMs = plan.maxDelayMs ?? 0;
  const faults: FaultRecord[] = [];
  const waiting = new Set<NodeJS.Timeout>();
  let sent = 0;
  let closed = false;

  /** Sends one copy, now or after a drawn delay; a copy sent late that fails is lost, as on a network. */
  const sendCopy = (message: RingMessage, index: number, tag: number, mayFault: boolean): Promise<void> => {
    if (!mayFault || !(random() < delayProbability)) return inner.send(message);
    const delayMs = random() * maxDelayMs;
    faults.push({ kind: "delay", index, tag, atMs: performance.now(), delayMs });
    const timer = setTimeout(() => {
      waiting.delete(timer);
      if (!closed) inner.send(message).catch(() => undefined);
    }, delayMs);
    waiting.add(timer);
    return Promise.resolve();
  };

  return {
    rank: inner.rank,
    worldSize: inner.worldSize,
    maxMessageBytes: inner.maxMessageBytes,
    get faults() {
      return faults;
    },
    get sent() {
      return sent;
    },
    ...(inner.carriesFrames === undefined ? {} : { carriesFrames: inner.carriesFrames }),
    async send(message: RingMessage): Promise<void> {
      const index = sent++;
      const mayFault = plan.applies?.(index) ?? true;
      const tag = decodeRingMessage(message, "faulty transport").tag;
      if (mayFault && random() < dropProbability) {
        faults.push({ kind: "drop", index, tag, atMs: performance.now() });
        return;
      }
      const copies = [sendCopy(message, index, tag, mayFault)];
      if (mayFault && random() < duplicateProbability) {
        faults.push({ kind: "duplicate", index, tag, atMs: performance.now() });
        copies.push(sendCopy(message, index, tag, mayFault));
      }
      await Promise.all(copies);
    },
    onMessage: (handler) => inner.onMessage(handler),
    onError: (handler) => inner.onError(handler),
    async close(): Promise<void> {
      closed = true;
      for (const timer of waiting) clearTimeout(timer);
      waiting.clear();
      await inner.close();
    },
  };
}
