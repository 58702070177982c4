// The ring all-reduce over its real transports: a nats-server started here with a small max_payload (so
// every bucket travels in many chunks), and direct WebSockets on loopback.
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import { WebSocket } from "ws";
import { createNatsRingTransport } from "../../worker/allreduce/nats-transport.js";
import { RingAllReduce } from "../../worker/allreduce/ring.js";
import type { RingTransport } from "../../worker/allreduce/transport.js";
import { listenWsRing } from "../../worker/allreduce/ws-transport.js";
import { assertSummedAndIdentical, rankInputs } from "../support/allreduce-check.js";
import { freePort, requireNatsServer, startNatsServer } from "../support/nats.js";

const MAX_PAYLOAD_BYTES = 64 * 1024;
/** Bigger than a message can be, so each bucket is cut into many chunks. */
const BUCKET_BYTES = 256 * 1024;
/** Odd lengths: ~1 MB of floats over several buckets, then one shorter than a chunk. */
const LENGTHS = [262_147, 1_001];

/** Runs one exchange per length on every rank, back to back on the same transports. */
async function reduceEachLength(transports: readonly RingTransport[]): Promise<void> {
  const rings = transports.map((transport) => new RingAllReduce(transport, { bucketBytes: BUCKET_BYTES }));
  for (const [exchange, length] of LENGTHS.entries()) {
    const inputs = rankInputs(transports.length, length, 31 * exchange + transports.length);
    const outputs = await Promise.all(
      rings.map((ring, rank) => ring.allReduce(Float32Array.from(inputs[rank] ?? []), exchange)),
    );
    assertSummedAndIdentical(outputs, inputs);
  }
}

test("allreduce over NATS - 1, 2 and 3 ranks, odd lengths, buckets bigger than max_payload, equal the sum", async (t) => {
  const binary = requireNatsServer(t);
  if (binary === undefined) return;
  const server = await startNatsServer(binary, { maxPayloadBytes: MAX_PAYLOAD_BYTES });
  t.after(() => server.stop());
  for (const worldSize of [1, 2, 3]) {
    const connections: NatsConnection[] = await Promise.all(
      Array.from({ length: worldSize }, () => connect({ servers: server.url })),
    );
    try {
      const transports = await Promise.all(
        connections.map((nc, rank) => createNatsRingTransport(nc, `allreduce-${worldSize}`, rank, worldSize)),
      );
      for (const transport of transports) assert.equal(transport.maxMessageBytes, MAX_PAYLOAD_BYTES);
      await reduceEachLength(transports);
      await Promise.all(transports.map((transport) => transport.close()));
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  }
});

test("allreduce over WebSockets - 1, 2 and 3 ranks, odd lengths, buckets bigger than a frame, equal the sum", async () => {
  for (const worldSize of [1, 2, 3]) {
    const listeners = await Promise.all(
      Array.from({ length: worldSize }, () =>
        listenWsRing("127.0.0.1", 0, { maxPayloadBytes: MAX_PAYLOAD_BYTES }),
      ),
    );
    try {
      const transports = await Promise.all(
        listeners.map((listener, rank) =>
          listener.connect(rank, worldSize, listeners[(rank + 1) % worldSize]?.address ?? ""),
        ),
      );
      await reduceEachLength(transports);
    } finally {
      await Promise.all(listeners.map((listener) => listener.close()));
    }
  }
});

test("ws ring - a rank connects to a next rank whose server starts later", async () => {
  const port = await freePort();
  const first = await listenWsRing("127.0.0.1", 0);
  // Rank 0 starts first and retries until rank 1 listens.
  const firstTransport = first.connect(0, 2, `ws://127.0.0.1:${port}`);
  const second = await listenWsRing("127.0.0.1", port);
  try {
    const transports = await Promise.all([firstTransport, second.connect(1, 2, first.address)]);
    const inputs = rankInputs(2, 11, 5);
    const outputs = await Promise.all(
      transports.map((transport, rank) =>
        new RingAllReduce(transport).allReduce(Float32Array.from(inputs[rank] ?? []), 0),
      ),
    );
    assertSummedAndIdentical(outputs, inputs);
  } finally {
    await Promise.all([first.close(), second.close()]);
  }
});

test("ws ring - a frame larger than maxPayloadBytes is refused with close code 1009", async () => {
  const listener = await listenWsRing("127.0.0.1", 0, { maxPayloadBytes: 1024 });
  try {
    const socket = new WebSocket(`${listener.address}/ring?from=1`);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    const closed = new Promise<number>((resolve) => socket.once("close", (code) => resolve(code)));
    socket.send(new Uint8Array(2048), { binary: true });
    assert.equal(await closed, 1009);
  } finally {
    await listener.close();
  }
});
