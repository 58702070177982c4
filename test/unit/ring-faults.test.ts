// The ring all-reduce under injected faults (test/support/faulty-transport.ts): dropped, delayed and
// duplicated messages over the in-memory ring and over a real nats-server. The promise under test: every rank
// either returns exactly the sum a fault-free ring returns (the same bits) or fails with a RingError within
// messageTimeoutMs and some slack; none hangs. Delays and duplicates alone always give the exact sum.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import { encodeMessage } from "../../shared/protocol.js";
import { RingError, RingTimeoutError } from "../../worker/allreduce/errors.js";
import { RING_DROP_REASONS, type RingDropReason } from "../../worker/allreduce/mailbox.js";
import { createNatsRingTransport } from "../../worker/allreduce/nats-transport.js";
import { RingAllReduce } from "../../worker/allreduce/ring.js";
import { packRingTag } from "../../worker/allreduce/tag.js";
import type { RingTransport } from "../../worker/allreduce/transport.js";
import { assertSummedAndIdentical, rankInputs } from "../support/allreduce-check.js";
import { faultyTransport, type FaultPlan, type FaultyTransport } from "../support/faulty-transport.js";
import { createMemoryRing } from "../support/memory-ring.js";
import { sharedNatsServer } from "../support/nats.js";

const nats = sharedNatsServer();

const MESSAGE_TIMEOUT_MS = 250;
/** Scheduling on a loaded 2-core machine, and the delays a stalled exchange saw before it stalled. */
const SLACK_MS = 750;
const MAX_DELAY_MS = 10;
/** 1000 floats in 2 buckets, cut into chunks of 48 floats: many messages per exchange. */
const LENGTH = 1000;
const BUCKET_BYTES = 2400;
const MAX_MESSAGE_BYTES = 256;

type Outcome =
  | { readonly kind: "sum"; readonly value: Float32Array; readonly elapsedMs: number }
  | { readonly kind: "error"; readonly error: unknown; readonly elapsedMs: number }
  | { readonly kind: "hung"; readonly elapsedMs: number };

/** Awaits `promise` for at most limitMs, so that a hang is an outcome to report, not a stuck test. */
async function settle(promise: Promise<Float32Array>, limitMs: number): Promise<Outcome> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<"hung">((resolve) => (timer = setTimeout(() => resolve("hung"), limitMs)));
  try {
    const result = await Promise.race([promise, hung]);
    const elapsedMs = performance.now() - started;
    return result === "hung" ? { kind: "hung", elapsedMs } : { kind: "sum", value: result, elapsedMs };
  } catch (error) {
    return { kind: "error", error, elapsedMs: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
}

function sameBits(a: Float32Array, b: Float32Array): boolean {
  const bytes = (array: Float32Array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);
  return bytes(a).equals(bytes(b));
}

/** What a fault-free ring of the same world size and buckets returns: the bits every rank must end with. */
async function referenceSum(inputs: readonly Float32Array[]): Promise<Float32Array> {
  const { transports } = createMemoryRing(inputs.length);
  const outputs = await Promise.all(
    transports.map((transport, rank) =>
      new RingAllReduce(transport, { bucketBytes: BUCKET_BYTES }).allReduce(
        Float32Array.from(inputs[rank] ?? []),
        0,
      ),
    ),
  );
  assertSummedAndIdentical(outputs, inputs);
  return outputs[0] ?? new Float32Array(0);
}

function activeTimeouts(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function describeFaults(transports: readonly FaultyTransport[]): string {
  return transports
    .map((transport) => {
      const count = (kind: string) => transport.faults.filter((fault) => fault.kind === kind).length;
      return `rank ${transport.rank}: ${transport.sent} sent, ${count("drop")} dropped, ${count("duplicate")} duplicated, ${count("delay")} delayed`;
    })
    .join("; ");
}

interface TrialResult {
  /** Exchanges every rank returned the exact sum of. */
  readonly exact: number;
  /** 1 when an exchange failed (the trial stops there), else 0. */
  readonly failed: number;
  /** Slowest failure, in ms from the call. */
  readonly slowestFailureMs: number;
}

/**
 * Runs `exchanges` all-reduces over `transports`, each wrapped in a fault injector seeded from `seed` and
 * its rank, and checks every rank's outcome. Stops at the first exchange that fails anywhere.
 */
async function faultTrial(
  transports: readonly RingTransport[],
  seed: number,
  faults: Omit<FaultPlan, "seed">,
  exchanges: number,
): Promise<TrialResult> {
  const worldSize = transports.length;
  const faulty = transports.map((transport, rank) =>
    faultyTransport(transport, { ...faults, seed: 97 * seed + rank }),
  );
  const dropped: RingDropReason[] = [];
  const rings = faulty.map(
    (transport) =>
      new RingAllReduce(transport, {
        bucketBytes: BUCKET_BYTES,
        messageTimeoutMs: MESSAGE_TIMEOUT_MS,
        onDropped: (reason) => dropped.push(reason),
      }),
  );
  const context = () => `${worldSize} ranks, seed ${seed}: ${describeFaults(faulty)}`;
  let exact = 0;
  let slowestFailureMs = 0;
  try {
    for (let exchange = 0; exchange < exchanges; exchange++) {
      const inputs = rankInputs(worldSize, LENGTH, 1000 * seed + exchange);
      const expected = await referenceSum(inputs);
      const outcomes = await Promise.all(
        rings.map((ring, rank) =>
          settle(
            ring.allReduce(Float32Array.from(inputs[rank] ?? []), exchange),
            MESSAGE_TIMEOUT_MS + SLACK_MS,
          ),
        ),
      );
      let failed = false;
      for (const [rank, outcome] of outcomes.entries()) {
        if (outcome.kind === "hung")
          assert.fail(
            `rank ${rank} neither returned nor failed within ${MESSAGE_TIMEOUT_MS + SLACK_MS} ms: ${context()}`,
          );
        if (outcome.kind === "sum") {
          assert.ok(sameBits(outcome.value, expected), `rank ${rank} returned a wrong sum: ${context()}`);
          continue;
        }
        failed = true;
        slowestFailureMs = Math.max(slowestFailureMs, outcome.elapsedMs);
        assert.ok(
          outcome.error instanceof RingError,
          `rank ${rank} failed with ${String(outcome.error)}: ${context()}`,
        );
        assert.equal(outcome.error.rank, rank);
      }
      if (failed) {
        const drops = faulty.flatMap((transport) =>
          transport.faults.filter((fault) => fault.kind === "drop"),
        );
        assert.ok(drops.length > 0, `an exchange failed with no message lost: ${context()}`);
        return { exact, failed: 1, slowestFailureMs };
      }
      exact++;
    }
    // Every exchange succeeded: once late copies have landed, each duplicate was dropped (and told) exactly
    // once, and nothing is left in any mailbox.
    await sleep(4 * MAX_DELAY_MS + 50);
    const duplicates = faulty.flatMap((transport) =>
      transport.faults.filter((fault) => fault.kind === "duplicate"),
    );
    assert.equal(dropped.length, duplicates.length, `drops ${dropped.join(",")}: ${context()}`);
    for (const ring of rings) assert.equal(ring.heldChunks, 0, `chunks left held: ${context()}`);
    const counted = rings.reduce(
      (sum, ring) => sum + RING_DROP_REASONS.reduce((n, r) => n + ring.dropped[r], 0),
      0,
    );
    assert.equal(counted, dropped.length);
    return { exact, failed: 0, slowestFailureMs };
  } finally {
    await Promise.all(faulty.map((transport) => transport.close()));
  }
}

/**
 * Trials on fresh memory rings for world sizes 2–4 and `seeds` seeds each, all of a world size at once;
 * `frames`: chunks carried as frames (envelope, payload), as over ws.
 */
async function memoryFaultTrials(
  faults: Omit<FaultPlan, "seed">,
  seeds: number,
  exchanges: number,
  frames = false,
) {
  const totals = { exact: 0, failed: 0, slowestFailureMs: 0 };
  for (const worldSize of [2, 3, 4]) {
    const results = await Promise.all(
      Array.from({ length: seeds }, (_, i) => {
        const seed = 100 * worldSize + i;
        const options = { maxMessageBytes: MAX_MESSAGE_BYTES, reorder: true, seed, frames };
        const ring = createMemoryRing(worldSize, options);
        return faultTrial(ring.transports, seed, faults, exchanges);
      }),
    );
    for (const result of results) {
      totals.exact += result.exact;
      totals.failed += result.failed;
      totals.slowestFailureMs = Math.max(totals.slowestFailureMs, result.slowestFailureMs);
    }
  }
  return totals;
}

test(
  "ring faults - delays alone always give the exact sum (2–4 ranks, 20 seeds, 3 exchanges each)",
  { timeout: 30_000 },
  async (t) => {
    const totals = await memoryFaultTrials({ delayProbability: 0.5, maxDelayMs: MAX_DELAY_MS }, 20, 3);
    t.diagnostic(`${totals.exact} exact exchanges`);
    assert.deepEqual(totals, { exact: 3 * 20 * 3, failed: 0, slowestFailureMs: 0 });
  },
);

test(
  "ring faults - duplicates (delayed or not) are dropped, told, and the sum stays exact",
  { timeout: 30_000 },
  async (t) => {
    const totals = await memoryFaultTrials(
      { duplicateProbability: 0.2, delayProbability: 0.3, maxDelayMs: MAX_DELAY_MS },
      20,
      3,
    );
    t.diagnostic(`${totals.exact} exact exchanges`);
    assert.deepEqual(totals, { exact: 3 * 20 * 3, failed: 0, slowestFailureMs: 0 });
  },
);

test(
  "ring faults - chunks carried as frames (as over ws), delayed and duplicated: the sum stays exact",
  { timeout: 30_000 },
  async (t) => {
    const faults = { duplicateProbability: 0.2, delayProbability: 0.3, maxDelayMs: MAX_DELAY_MS };
    const totals = await memoryFaultTrials(faults, 10, 3, true);
    t.diagnostic(`${totals.exact} exact exchanges`);
    assert.deepEqual(totals, { exact: 3 * 10 * 3, failed: 0, slowestFailureMs: 0 });
  },
);

test(
  "ring faults - drops, delays and duplicates: every rank returns the exact sum or fails by name within the deadline",
  { timeout: 60_000 },
  async (t) => {
    const totals = await memoryFaultTrials(
      { dropProbability: 0.004, duplicateProbability: 0.05, delayProbability: 0.3, maxDelayMs: MAX_DELAY_MS },
      16,
      2,
    );
    t.diagnostic(
      `${totals.exact} exact exchanges, ${totals.failed} failed ones; slowest failure ${totals.slowestFailureMs.toFixed(0)} ms (deadline ${MESSAGE_TIMEOUT_MS} ms)`,
    );
    // Both outcomes occur, or the test proves little.
    assert.ok(totals.exact > 0 && totals.failed > 0, JSON.stringify(totals));
  },
);

test(
  "ring faults - a lost message fails every rank with a RingTimeoutError within messageTimeoutMs",
  { timeout: 10_000 },
  async (t) => {
    const worldSize = 3;
    const timeoutMs = 300;
    const ring = createMemoryRing(worldSize, { maxMessageBytes: MAX_MESSAGE_BYTES });
    // Rank 0 loses the third chunk it sends: reduce-scatter step 0, for rank 1.
    const faulty = ring.transports.map((transport, rank) =>
      faultyTransport(transport, {
        seed: rank,
        dropProbability: 1,
        applies: (index) => rank === 0 && index === 2,
      }),
    );
    const timersBefore = activeTimeouts();
    const rings = faulty.map((transport) => new RingAllReduce(transport, { messageTimeoutMs: timeoutMs }));
    const inputs = rankInputs(worldSize, LENGTH, 7);
    const called = performance.now();
    const outcomes = await Promise.all(
      rings.map((allReduce, rank) =>
        settle(allReduce.allReduce(Float32Array.from(inputs[rank] ?? []), 0), timeoutMs + SLACK_MS),
      ),
    );
    const lost = faulty[0]?.faults[0];
    assert.ok(lost !== undefined && lost.kind === "drop");
    for (const [rank, outcome] of outcomes.entries()) {
      assert.equal(outcome.kind, "error", `rank ${rank}: ${outcome.kind}`);
      if (outcome.kind !== "error") continue;
      const { error } = outcome;
      assert.ok(error instanceof RingTimeoutError, String(error));
      assert.equal(error.rank, rank);
      assert.equal(error.peer, (rank + worldSize - 1) % worldSize);
      assert.equal(error.timeoutMs, timeoutMs);
      assert.match(
        error.message,
        new RegExp(`^all-reduce on rank ${rank}, exchange 0 \\(mod 2\\^20\\), bucket 0, `),
      );
      assert.match(
        error.message,
        new RegExp(
          `no ring message from rank ${error.peer} for ${timeoutMs} ms; a lost message or a lost rank$`,
        ),
      );
      // Detected no sooner than the deadline allows, and soon after it.
      const sinceLossMs = called + outcome.elapsedMs - lost.atMs;
      t.diagnostic(`rank ${rank}: failed ${sinceLossMs.toFixed(0)} ms after the loss: ${error.reason}`);
      assert.ok(outcome.elapsedMs >= timeoutMs - 5, `rank ${rank} gave up after ${outcome.elapsedMs} ms`);
      assert.ok(sinceLossMs >= timeoutMs - 50, `rank ${rank} gave up ${sinceLossMs} ms after the loss`);
      assert.ok(sinceLossMs <= timeoutMs + 400, `rank ${rank} noticed ${sinceLossMs} ms after the loss`);
    }
    // Rank 1 names the very message that was lost.
    const first = outcomes[1];
    assert.ok(first?.kind === "error" && first.error instanceof RingError);
    assert.equal(first.error.tag, lost.tag);
    assert.match(first.error.message, /reduce-scatter step 0/);
    // The ring is out of step: the next exchange fails at once, without waiting for a deadline.
    const started = performance.now();
    await assert.rejects(
      rings[1]?.allReduce(new Float32Array(LENGTH), 1) ?? Promise.resolve(),
      RingTimeoutError,
    );
    assert.ok(performance.now() - started < 50);
    await Promise.all(faulty.map((transport) => transport.close()));
    assert.equal(activeTimeouts(), timersBefore, "a deadline timer was left behind");
  },
);

test(
  "ring faults - a late copy of a finished exchange is dropped as stale and the next exchange equals its sum",
  { timeout: 10_000 },
  async () => {
    const worldSize = 3;
    const ring = createMemoryRing(worldSize);
    const dropped: { rank: number; reason: string; detail: string }[] = [];
    const rings = ring.transports.map(
      (transport, rank) =>
        new RingAllReduce(transport, {
          messageTimeoutMs: 5_000,
          onDropped: (reason, detail) => dropped.push({ rank, reason, detail }),
        }),
    );
    const reduce = async (exchange: number, during?: () => void) => {
      const inputs = rankInputs(worldSize, 9, exchange);
      const pending = rings.map((allReduce, rank) =>
        allReduce.allReduce(Float32Array.from(inputs[rank] ?? []), exchange),
      );
      during?.();
      const outputs = await Promise.all(pending);
      assert.ok(sameBits(outputs[0] ?? new Float32Array(0), await referenceSum(inputs)));
      assertSummedAndIdentical(outputs, inputs);
    };
    // A copy of the chunk rank 0 sent rank 1 in exchange 0's first step (segment 0 of 9 floats is [0, 3)).
    const lateCopy = encodeMessage({
      tag: packRingTag(0, 0, "reduce-scatter", 0),
      offset: 0,
      data: new Uint8Array(12),
    });
    await reduce(0);
    ring.inject(1, lateCopy);
    await reduce(1, () => ring.inject(1, lateCopy));
    assert.equal(dropped.length, 2);
    for (const drop of dropped) {
      assert.equal(drop.rank, 1);
      assert.equal(drop.reason, "stale");
      assert.match(
        drop.detail,
        /^rank 1 dropped chunk \[0, 3\) from rank 0, exchange 0 \(mod 2\^20\), bucket 0, reduce-scatter step 0 .*: its exchange has finished/,
      );
    }
    assert.deepEqual(rings[1]?.dropped, { duplicate: 0, stale: 2, abandoned: 0, malformed: 0 });
    for (const allReduce of rings) assert.equal(allReduce.heldChunks, 0);
    // An exchange number is used once: reusing one would make its late copies indistinguishable.
    await assert.rejects(
      rings[0]?.allReduce(new Float32Array(9), 0) ?? Promise.resolve(),
      /exchange 0 .*already ran on this ring/,
    );
  },
);

test(
  "ring faults - a second copy during the exchange is dropped as duplicate; the stall after it names its step",
  { timeout: 10_000 },
  async () => {
    // Rank 1 of 3 alone: its neighbours never run, so after step 0 it waits in vain.
    const ring = createMemoryRing(3);
    const dropped: string[] = [];
    const allReduce = new RingAllReduce(ring.transports[1] as RingTransport, {
      messageTimeoutMs: 200,
      onDropped: (reason) => dropped.push(reason),
    });
    const pending = settle(allReduce.allReduce(new Float32Array(9), 4), 200 + SLACK_MS);
    const tag = packRingTag(4, 0, "reduce-scatter", 0);
    const chunk = (offset: number, floats: number) =>
      encodeMessage({ tag, offset, data: new Uint8Array(4 * floats) });
    ring.inject(1, chunk(0, 2));
    ring.inject(1, chunk(0, 2));
    ring.inject(1, chunk(2, 1));
    const outcome = await pending;
    assert.equal(outcome.kind, "error");
    if (outcome.kind !== "error") return;
    assert.ok(outcome.error instanceof RingTimeoutError);
    assert.match(
      outcome.error.message,
      /all-reduce on rank 1, exchange 4 \(mod 2\^20\), bucket 0, reduce-scatter step 1 .*: no ring message from rank 0 for 200 ms/,
    );
    assert.deepEqual(dropped, ["duplicate"]);
    assert.equal(allReduce.heldChunks, 0);
  },
);

test(
  "ring faults - abort fails a waiting exchange at once and leaves no timer",
  { timeout: 10_000 },
  async () => {
    const timersBefore = activeTimeouts();
    const ring = createMemoryRing(3);
    const allReduce = new RingAllReduce(ring.transports[1] as RingTransport, { messageTimeoutMs: 60_000 });
    const pending = settle(allReduce.allReduce(new Float32Array(9), 0), 1_000);
    await sleep(20);
    allReduce.abort("rank 2 is gone");
    const outcome = await pending;
    assert.equal(outcome.kind, "error");
    assert.ok(outcome.elapsedMs < 200, `${outcome.elapsedMs} ms`);
    if (outcome.kind === "error") assert.match(String(outcome.error), /rank 1: aborted: rank 2 is gone/);
    assert.equal(activeTimeouts(), timersBefore);
  },
);

test("ring faults - a successful exchange leaves no timer behind", { timeout: 10_000 }, async () => {
  const timersBefore = activeTimeouts();
  const { transports } = createMemoryRing(4, { reorder: true });
  const rings = transports.map((transport) => new RingAllReduce(transport, { messageTimeoutMs: 60_000 }));
  const inputs = rankInputs(4, 101, 3);
  const outputs = await Promise.all(
    rings.map((ring, rank) => ring.allReduce(Float32Array.from(inputs[rank] ?? []), 0)),
  );
  assertSummedAndIdentical(outputs, inputs);
  assert.equal(activeTimeouts(), timersBefore);
});

test(
  "ring faults over NATS - 3 ranks, drops, delays and duplicates: the exact sum or a RingError within the deadline",
  { timeout: 30_000 },
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const totals = { exact: 0, failed: 0, slowestFailureMs: 0 };
    const results = await Promise.all(
      Array.from({ length: 8 }, async (_, seed) => {
        const worldSize = 3;
        const connections: NatsConnection[] = await Promise.all(
          Array.from({ length: worldSize }, () => connect({ servers: server.url })),
        );
        try {
          const transports = await Promise.all(
            connections.map((nc, rank) => createNatsRingTransport(nc, `faults-${seed}`, rank, worldSize)),
          );
          return await faultTrial(
            transports,
            seed,
            {
              dropProbability: 0.003,
              duplicateProbability: 0.05,
              delayProbability: 0.3,
              maxDelayMs: MAX_DELAY_MS,
            },
            3,
          );
        } finally {
          await Promise.all(connections.map((nc) => nc.close()));
        }
      }),
    );
    for (const result of results) {
      totals.exact += result.exact;
      totals.failed += result.failed;
      totals.slowestFailureMs = Math.max(totals.slowestFailureMs, result.slowestFailureMs);
    }
    t.diagnostic(
      `${totals.exact} exact exchanges, ${totals.failed} failed ones; slowest failure ${totals.slowestFailureMs.toFixed(0)} ms`,
    );
    assert.ok(totals.exact > 0);
  },
);
