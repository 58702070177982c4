// A ring message's tag: which (exchange, bucket, phase, step) it belongs to, packed into one non-negative
// safe integer (53 bits), so messages of different steps never mix however they are delayed or reordered.
//
//   bits  52 ........ 33 | 32 ....... 13 | 12    | 11 ..... 0
//         exchange mod 2^20 | bucket      | phase | step k
//
// tag = ((exchange mod 2^20) · 2^20 + bucket) · 2^13 + phase · 2^12 + k      (at most 2^53 − 1)
//
// Exchanges wrap modulo 2^20: tags only have to differ between messages that can be in flight at once, and a
// rank cannot run ahead of its neighbours by more than one exchange. Arithmetic, not bit operators, since
// those truncate to 32 bits.

export const RING_PHASES = ["reduce-scatter", "all-gather"] as const;
export type RingPhase = (typeof RING_PHASES)[number];

export const EXCHANGE_SLOTS = 2 ** 20;
export const MAX_BUCKETS = 2 ** 20;
/** k runs over 0 .. worldSize − 2, so this allows worldSize ≤ 4097; we promise 4096. */
export const MAX_STEPS = 2 ** 12;
export const MAX_WORLD_SIZE = MAX_STEPS;

export interface RingTagFields {
  /** exchange mod EXCHANGE_SLOTS */
  readonly exchangeSlot: number;
  readonly bucket: number;
  readonly phase: RingPhase;
  readonly step: number;
}

function checkField(name: string, value: number, limit: number): void {
  if (!Number.isSafeInteger(value) || value < 0 || value >= limit)
    throw new RangeError(`ring tag: ${name} ${value} is not an integer in [0, ${limit})`);
}

export function packRingTag(exchange: number, bucket: number, phase: RingPhase, step: number): number {
  checkField("exchange", exchange, Number.MAX_SAFE_INTEGER + 1);
  checkField("bucket", bucket, MAX_BUCKETS);
  checkField("step", step, MAX_STEPS);
  const phaseBit = phase === "reduce-scatter" ? 0 : 1;
  return ((exchange % EXCHANGE_SLOTS) * MAX_BUCKETS + bucket) * 2 ** 13 + phaseBit * 2 ** 12 + step;
}

/** The exchange slot (exchange mod EXCHANGE_SLOTS) a tag belongs to: unpackRingTag(tag).exchangeSlot, cheaply. */
export function exchangeSlotOf(tag: number): number {
  return Math.floor(tag / 2 ** 33);
}

export function unpackRingTag(tag: number): RingTagFields {
  checkField("tag", tag, Number.MAX_SAFE_INTEGER + 1);
  const step = tag % MAX_STEPS;
  const phaseBit = Math.floor(tag / MAX_STEPS) % 2;
  const bucket = Math.floor(tag / 2 ** 13) % MAX_BUCKETS;
  const exchangeSlot = Math.floor(tag / 2 ** 33);
  return { exchangeSlot, bucket, phase: RING_PHASES[phaseBit] ?? "reduce-scatter", step };
}

/** For error messages: "exchange 3, bucket 0, reduce-scatter step 1 (tag 25769807873)". */
export function describeRingTag(tag: number): string {
  if (!Number.isSafeInteger(tag) || tag < 0) return `tag ${tag}`;
  const { exchangeSlot, bucket, phase, step } = unpackRingTag(tag);
  return `exchange ${exchangeSlot} (mod 2^20), bucket ${bucket}, ${phase} step ${step} (tag ${tag})`;
}
