import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeMessage, encodeRingEnvelope } from "../../shared/protocol.js";
import { RingError } from "../../worker/allreduce/errors.js";
import { CHUNK_OVERHEAD_BYTES, floatsPerChunk, segmentSpan } from "../../worker/allreduce/layout.js";
import { RingAllReduce, type RingAllReduceOptions } from "../../worker/allreduce/ring.js";
import { MAX_BUCKETS, MAX_STEPS, packRingTag, unpackRingTag } from "../../worker/allreduce/tag.js";
import type { RingMessage, RingTransport } from "../../worker/allreduce/transport.js";
import { roundToWire } from "../../worker/allreduce/wire-dtype.js";
import { assertSummedAndIdentical, rankInputs } from "../support/allreduce-check.js";
import { createMemoryRing, type MemoryRingOptions } from "../support/memory-ring.js";

/** Runs one all-reduce of fresh inputs on every rank of a memory ring; returns inputs and outputs. */
async function reduceOnMemoryRing(
  worldSize: number,
  length: number,
  ring: MemoryRingOptions = {},
  options: RingAllReduceOptions = {},
) {
  const { transports, stats } = createMemoryRing(worldSize, ring);
  const inputs = rankInputs(worldSize, length, 1000 * worldSize + length);
  const buffers = inputs.map((input) => Float32Array.from(input));
  const outputs = await Promise.all(
    transports.map((transport, rank) => new RingAllReduce(transport, options).allReduce(buffers[rank]!, 0)),
  );
  for (const [rank, output] of outputs.entries()) assert.equal(output, buffers[rank], "reduced in place");
  return { inputs, outputs, stats };
}

test("allreduce - 3 ranks, odd length, equals the sum", async () => {
  const { inputs, outputs } = await reduceOnMemoryRing(3, 1001, { reorder: true });
  assertSummedAndIdentical(outputs, inputs);
});

test("allreduce - lengths 0, 1, 2 (shorter than the ring) and 7 equal the sum on 3 ranks", async () => {
  for (const length of [0, 1, 2, 7]) {
    const { inputs, outputs } = await reduceOnMemoryRing(3, length, { reorder: true });
    assert.equal(outputs[0]?.length, length);
    assertSummedAndIdentical(outputs, inputs);
  }
});

test("allreduce - 1, 2, 3 and 4 ranks equal the sum and agree bit for bit", async () => {
  for (const worldSize of [1, 2, 3, 4]) {
    const { inputs, outputs } = await reduceOnMemoryRing(worldSize, 1009, { reorder: true, seed: worldSize });
    assertSummedAndIdentical(outputs, inputs);
  }
});

test("allreduce - 1000003 floats in 64 KiB buckets equal the sum on 3 ranks", async () => {
  const { inputs, outputs } = await reduceOnMemoryRing(3, 1_000_003, {}, { bucketBytes: 64 * 1024 });
  assertSummedAndIdentical(outputs, inputs);
});

test("allreduce - a bucket larger than maxMessageBytes travels as many chunks, each within the limit", async () => {
  const maxMessageBytes = 1024;
  const { inputs, outputs, stats } = await reduceOnMemoryRing(4, 100_003, { maxMessageBytes, reorder: true });
  assertSummedAndIdentical(outputs, inputs);
  assert.ok(
    stats.largestMessageBytes <= maxMessageBytes,
    `largest message ${stats.largestMessageBytes} bytes`,
  );
  // 2 phases × 3 steps × 4 ranks segments of ~25001 floats, at most 240 floats per chunk
  assert.ok(stats.messages >= 24 * Math.ceil(25_000 / floatsPerChunk(maxMessageBytes)), `${stats.messages}`);
});

test("allreduce - 1 rank returns the buffer untouched without using the transport", async () => {
  const untouchable: RingTransport = {
    rank: 0,
    worldSize: 1,
    get maxMessageBytes(): number {
      throw new Error("read maxMessageBytes");
    },
    send: () => Promise.reject(new Error("sent")),
    onMessage: () => assert.fail("set a message handler"),
    onError: () => assert.fail("set an error handler"),
    close: () => Promise.reject(new Error("closed")),
  };
  const buffer = Float32Array.from([1.5, -2, 3]);
  const result = await new RingAllReduce(untouchable).allReduce(buffer, 7);
  assert.equal(result, buffer);
  assert.deepEqual([...result], [1.5, -2, 3]);
});

test("allreduce - two exchanges issued back to back do not mix", async () => {
  const worldSize = 3;
  const { transports } = createMemoryRing(worldSize, { reorder: true, seed: 7, maxMessageBytes: 512 });
  const rings = transports.map((transport) => new RingAllReduce(transport, { bucketBytes: 1024 }));
  const first = rankInputs(worldSize, 777, 1);
  const second = rankInputs(worldSize, 777, 2);
  const firstBuffers = first.map((input) => Float32Array.from(input));
  const secondBuffers = second.map((input) => Float32Array.from(input));
  // Neither exchange is awaited before the other starts: their messages share every link.
  const results = await Promise.all(
    rings.flatMap((ring, rank) => [
      ring.allReduce(firstBuffers[rank]!, 0),
      ring.allReduce(secondBuffers[rank]!, 1),
    ]),
  );
  assertSummedAndIdentical(
    results.filter((_, i) => i % 2 === 0),
    first,
  );
  assertSummedAndIdentical(
    results.filter((_, i) => i % 2 === 1),
    second,
  );
});

test("allreduce - consecutive exchanges on the same rings equal their sums", async () => {
  const worldSize = 4;
  const { transports } = createMemoryRing(worldSize, { reorder: true, seed: 3, maxMessageBytes: 256 });
  const rings = transports.map((transport) => new RingAllReduce(transport, { bucketBytes: 512 }));
  for (let exchange = 0; exchange < 5; exchange++) {
    const inputs = rankInputs(worldSize, 300 + exchange, exchange);
    const outputs = await Promise.all(
      rings.map((ring, rank) => ring.allReduce(Float32Array.from(inputs[rank]!), exchange)),
    );
    assertSummedAndIdentical(outputs, inputs);
  }
});

/** Rank 1 of a 3-ring alone starts exchange 0 of 9 floats (segments [0,3) [3,6) [6,9)); its neighbours never do. */
function lonelyRank() {
  const ring = createMemoryRing(3);
  const allReduce = new RingAllReduce(ring.transports[1]!);
  const pending = allReduce.allReduce(new Float32Array(9), 0);
  return { ring, allReduce, pending };
}

test("allreduce - a chunk outside the expected segment is rejected with an error naming the rank and tag", async () => {
  const { ring, allReduce, pending } = lonelyRank();
  // Step 0 of rank 1 expects segment 0, [0, 3); this chunk claims segment 2.
  const tag = packRingTag(0, 0, "reduce-scatter", 0);
  ring.inject(1, encodeMessage({ tag, offset: 6, data: new Uint8Array(12) }));
  await assert.rejects(pending, (error: unknown) => {
    assert.ok(error instanceof RingError);
    assert.equal(error.rank, 1);
    assert.equal(error.tag, tag);
    assert.match(error.message, /rank 1/);
    assert.match(error.message, new RegExp(`tag ${tag}`));
    assert.match(error.message, /chunk \[6, 9\) from rank 0 is not inside the segment \[0, 3\)/);
    return true;
  });
  // The ring is out of step: later exchanges fail at once instead of hanging.
  await assert.rejects(allReduce.allReduce(new Float32Array(9), 1), RingError);
});

test("allreduce - a chunk overlapping one already received is rejected", async () => {
  const { ring, pending } = lonelyRank();
  const tag = packRingTag(0, 0, "reduce-scatter", 0);
  ring.inject(1, encodeMessage({ tag, offset: 0, data: new Uint8Array(8) }));
  ring.inject(1, encodeMessage({ tag, offset: 1, data: new Uint8Array(8) }));
  await assert.rejects(pending, /rank 1.*overlaps a chunk already received/);
});

/**
 * Hands rank 1 of a 3-rank memory ring `garbage` while it waits in an exchange; checks that each was dropped
 * as malformed without ending the exchange, and returns the drop lines.
 */
async function dropsWhileWaiting(garbage: readonly RingMessage[], frames = false): Promise<string[]> {
  const ring = createMemoryRing(3, { frames });
  const drops: string[] = [];
  const allReduce = new RingAllReduce(ring.transports[1]!, {
    onDropped: (reason, detail) => drops.push(`${reason}: ${detail}`),
  });
  const pending = allReduce.allReduce(new Float32Array(9), 0);
  let settled = false;
  pending.then(
    () => (settled = true),
    () => (settled = true),
  );
  for (const message of garbage) ring.inject(1, message);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(settled, false, "a malformed message must not end the exchange");
  assert.equal(allReduce.dropped.malformed, garbage.length);
  assert.equal(drops.length, garbage.length);
  for (const drop of drops)
    assert.match(
      drop,
      /^malformed: rank 1 dropped a malformed message from rank 0: protocol error on ring 0→1/,
    );
  allReduce.abort("test over");
  await assert.rejects(pending, RingError);
  return drops;
}

test("allreduce - a message that is not a ring chunk is dropped and counted, naming the rank; the exchange waits on", async () => {
  await dropsWhileWaiting([
    new Uint8Array([0xc1, 0xff, 0x00]),
    encodeMessage({ type: "heartbeat", rank: 0 }),
    encodeMessage({ tag: 1, offset: 0, data: new Uint8Array(3) }),
  ]);
});

test("allreduce - chunks carried as frames (envelope, then the floats apart, as over ws) equal the sum, fp32 and bf16", async () => {
  for (const worldSize of [2, 3, 4]) {
    const ring = { reorder: true, seed: worldSize, frames: true, maxMessageBytes: 4096 };
    const { inputs, outputs, stats } = await reduceOnMemoryRing(worldSize, 10_007, ring);
    assertSummedAndIdentical(outputs, inputs);
    assert.ok(stats.messages > 3 * worldSize, `${stats.messages} chunks: many per segment`);
    const narrowed = await reduceOnMemoryRing(worldSize, 1001, ring, { wireDtype: "bf16" });
    assertSummedAndIdentical(narrowed.outputs, narrowed.inputs, 2 ** -9);
  }
});

test("allreduce - frames that do not make a ring chunk are dropped and counted; the exchange waits on", async () => {
  const tag = packRingTag(0, 0, "reduce-scatter", 0);
  const envelope = (bytes: number) => encodeRingEnvelope({ tag, offset: 0, data: new Uint8Array(bytes) });
  const drops = await dropsWhileWaiting(
    [
      { envelope: envelope(8), payload: new Uint8Array(12) }, // the byte count is not the payload's
      { envelope: envelope(6), payload: new Uint8Array(6) }, // not whole floats
      { envelope: new Uint8Array([0xc1]), payload: new Uint8Array(4) }, // not msgpack
      { envelope: encodeMessage({ type: "heartbeat", rank: 0 }), payload: new Uint8Array(4) },
    ],
    true,
  );
  assert.match(drops[0] ?? "", /envelope says 8 bytes, its payload frame has 12/);
  assert.match(drops[1] ?? "", /whole 4-byte floats/);
});

test("allreduce - a broken link fails the waiting exchange", async () => {
  const { ring, pending } = lonelyRank();
  ring.breakLink(1, new Error("connection reset"));
  await assert.rejects(pending, /rank 1: the ring link failed: connection reset/);
});

test("ring tag - exchange, bucket, phase and step pack into distinct safe integers and back", () => {
  const seen = new Set<number>();
  for (const exchange of [0, 1, 2 ** 20 - 1])
    for (const bucket of [0, 1, MAX_BUCKETS - 1])
      for (const phase of ["reduce-scatter", "all-gather"] as const)
        for (const step of [0, 1, MAX_STEPS - 1]) {
          const tag = packRingTag(exchange, bucket, phase, step);
          assert.ok(Number.isSafeInteger(tag) && tag >= 0);
          assert.deepEqual(unpackRingTag(tag), { exchangeSlot: exchange, bucket, phase, step });
          seen.add(tag);
        }
  assert.equal(seen.size, 3 * 3 * 2 * 3);
  assert.equal(
    packRingTag(2 ** 20 - 1, MAX_BUCKETS - 1, "all-gather", MAX_STEPS - 1),
    Number.MAX_SAFE_INTEGER,
  );
  assert.equal(packRingTag(2 ** 20 + 5, 0, "reduce-scatter", 0), packRingTag(5, 0, "reduce-scatter", 0));
  assert.throws(() => packRingTag(0, MAX_BUCKETS, "reduce-scatter", 0), RangeError);
});

test("chunk size - the largest chunk a message allows encodes within maxMessageBytes", () => {
  for (const maxMessageBytes of [CHUNK_OVERHEAD_BYTES + 4, 100, 1024, 65_536, 1 << 20]) {
    const floats = floatsPerChunk(maxMessageBytes);
    const worst = {
      tag: Number.MAX_SAFE_INTEGER,
      offset: Number.MAX_SAFE_INTEGER,
      data: new Uint8Array(4 * floats),
    };
    const bytes = encodeMessage(worst).length;
    assert.ok(bytes <= maxMessageBytes, `${bytes} > ${maxMessageBytes}`);
    assert.ok(maxMessageBytes - bytes < CHUNK_OVERHEAD_BYTES, "the margin stays small");
  }
  assert.throws(() => floatsPerChunk(CHUNK_OVERHEAD_BYTES + 3), RangeError);
});

test("segments - N segments of a bucket cover it in order with sizes differing by at most one", () => {
  for (const length of [0, 1, 2, 3, 7, 100, 101]) {
    for (const worldSize of [1, 2, 3, 4]) {
      const bucket = { start: 50, end: 50 + length };
      const spans = Array.from({ length: worldSize }, (_, i) => segmentSpan(bucket, worldSize, i));
      const sizes = spans.map((span) => span.end - span.start);
      assert.equal(spans[0]?.start, bucket.start);
      assert.equal(spans.at(-1)?.end, bucket.end);
      for (let i = 1; i < spans.length; i++) assert.equal(spans[i]?.start, spans[i - 1]?.end);
      assert.ok(Math.max(...sizes) - Math.min(...sizes) <= 1, `${length} over ${worldSize}: ${sizes}`);
    }
  }
});

test("allreduce - chunkBytes caps every message below the transport's limit, and the chunked sum is bit-identical to one chunk per segment", async () => {
  const length = 50_021;
  const chunked = await reduceOnMemoryRing(3, length, { reorder: true, seed: 5 }, { chunkBytes: 4096 });
  assertSummedAndIdentical(chunked.outputs, chunked.inputs);
  assert.ok(
    chunked.stats.largestMessageBytes <= 4096 + CHUNK_OVERHEAD_BYTES,
    `${chunked.stats.largestMessageBytes}`,
  );
  assert.ok(chunked.stats.messages >= 6 * Math.ceil(length / 3 / 1024), `${chunked.stats.messages} messages`);
  // Elementwise additions in the same order per float: the chunk size cannot change a bit.
  const whole = await reduceOnMemoryRing(3, length, { reorder: true, seed: 5 }, { chunkBytes: 2 ** 30 });
  assert.deepEqual(chunked.outputs[0], whole.outputs[0]);
});

test("allreduce - bf16 and fp16 on the wire: half the bytes, the sum to the format's rounding, bit-identical ranks", async () => {
  const length = 30_011;
  const fp32 = await reduceOnMemoryRing(3, length, { reorder: true, seed: 5 });
  for (const [wireDtype, unitRoundoff] of [
    ["bf16", 2 ** -9],
    ["fp16", 2 ** -12],
  ] as const) {
    const narrow = await reduceOnMemoryRing(3, length, { reorder: true, seed: 5 }, { wireDtype });
    assertSummedAndIdentical(narrow.outputs, narrow.inputs, unitRoundoff);
    // The same chunks, each carrying 2 bytes a float instead of 4 (plus the same msgpack framing).
    assert.equal(narrow.stats.messages, fp32.stats.messages);
    const payload = (bytes: number, messages: number) => bytes - messages * CHUNK_OVERHEAD_BYTES;
    assert.ok(
      narrow.stats.bytes < 0.52 * fp32.stats.bytes &&
        payload(narrow.stats.bytes, narrow.stats.messages) <= 0.5 * fp32.stats.bytes,
      `${wireDtype}: ${narrow.stats.bytes} bytes against fp32's ${fp32.stats.bytes}`,
    );
    // Rounded, not merely perturbed: every output is a value the wire format can carry.
    const output = narrow.outputs[0]!;
    const narrowed = Float32Array.from(output);
    roundToWire(narrowed, wireDtype);
    assert.deepEqual(narrowed, output, `${wireDtype}: outputs are ${wireDtype} values`);
  }
});

test("allreduce - a 2-byte wire takes chunks of whole 2-byte floats and drops others as malformed", () => {
  const ring = createMemoryRing(2);
  const dropped: string[] = [];
  const allReduce = new RingAllReduce(ring.transports[1]!, {
    wireDtype: "bf16",
    onDropped: (reason) => dropped.push(reason),
  });
  const tag = packRingTag(5, 0, "reduce-scatter", 0);
  ring.inject(1, encodeMessage({ tag, offset: 0, data: new Uint8Array(3) }));
  assert.deepEqual(dropped, ["malformed"]);
  assert.equal(allReduce.heldChunks, 0);
  // 3 bf16 floats of an exchange this rank has not reached: held for it.
  ring.inject(1, encodeMessage({ tag, offset: 0, data: new Uint8Array(6) }));
  assert.deepEqual(dropped, ["malformed"]);
  assert.equal(allReduce.heldChunks, 1);
});

test("allreduce - the exact tail travels as fp32 on a narrowed wire: counts past bf16's 256 sum exactly", async () => {
  const worldSize = 3;
  const { transports } = createMemoryRing(worldSize, { reorder: true });
  const buffers = Array.from({ length: worldSize }, (_, rank) => {
    const buffer = new Float32Array(1000 + 2);
    buffer.fill(0.001 * (rank + 1), 0, 1000);
    buffer[1000] = 12_345 + rank; // a token count: 37,038 in all, not a bf16 value
    buffer[1001] = 1 / 3;
    return buffer;
  });
  await Promise.all(
    transports.map((transport, rank) =>
      new RingAllReduce(transport, { wireDtype: "bf16", exactTailFloats: 2 }).allReduce(buffers[rank]!, 0),
    ),
  );
  for (const buffer of buffers) {
    assert.equal(buffer[1000], 37_038);
    assert.equal(buffer[1001], Math.fround(Math.fround(Math.fround(1 / 3) * 2) + Math.fround(1 / 3)));
    const gradient = Float32Array.of(buffer[0]!);
    roundToWire(gradient, "bf16");
    assert.equal(gradient[0], buffer[0], "the rest travelled as bf16");
  }
});
