// The ring all-reduce over its real transports: a nats-server started here with a small max_payload (so
// every bucket travels in many chunks), and direct WebSockets on loopback; and how each fails fast when a
// neighbour or the server goes away, or a handshake never completes.
import { createServer, type Socket } from "node:net";
import { test } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import { WebSocket } from "ws";
import { createNatsRingTransport } from "../../worker/allreduce/nats-transport.js";
import { encodeMessage } from "../../shared/protocol.js";
import { RingError } from "../../worker/allreduce/errors.js";
import { RingAllReduce } from "../../worker/allreduce/ring.js";
import { packRingTag } from "../../worker/allreduce/tag.js";
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

test(
  "allreduce over NATS - 1, 2 and 3 ranks, odd lengths, buckets bigger than max_payload, equal the sum",
  { timeout: 60_000 },
  async (t) => {
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
          connections.map((nc, rank) =>
            createNatsRingTransport(nc, `allreduce-${worldSize}`, rank, worldSize),
          ),
        );
        for (const transport of transports) assert.equal(transport.maxMessageBytes, MAX_PAYLOAD_BYTES);
        await reduceEachLength(transports);
        await Promise.all(transports.map((transport) => transport.close()));
      } finally {
        await Promise.all(connections.map((nc) => nc.close()));
      }
    }
  },
);

test("allreduce over WebSockets - 1, 2 and 3 ranks, odd lengths, buckets bigger than a frame, equal the sum", async () => {
  for (const worldSize of [1, 2, 3]) {
    const listeners = await Promise.all(
      Array.from({ length: worldSize }, () =>
        listenWsRing("127.0.0.1", 0, { maxPayloadBytes: MAX_PAYLOAD_BYTES, token: RING_TOKEN }),
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

const RING_TOKEN = "0123456789abcdef0123456789abcdef";

test("ws ring - a connection without the job's ring token, or with another, is refused at the handshake (401), told once", async () => {
  const refused: string[] = [];
  const listener = await listenWsRing("127.0.0.1", 0, {
    token: RING_TOKEN,
    onRefused: (detail) => refused.push(detail),
  });
  try {
    for (const headers of [{}, { authorization: `Bearer ${RING_TOKEN.replace("0", "1")}` }]) {
      const socket = new WebSocket(`${listener.address}/ring?from=1`, { headers });
      const status = await new Promise<number>((resolve, reject) => {
        socket.once("unexpected-response", (_, response) => resolve(response.statusCode ?? 0));
        socket.once("open", () => reject(new Error("a connection without the token was accepted")));
        socket.once("error", reject);
      });
      socket.terminate();
      assert.equal(status, 401);
    }
    assert.equal(refused.length, 2);
    assert.match(refused[0] ?? "", /^a connection from 127\.0\.0\.1:\d+ without this job's ring token$/);
    // With the token, the same handshake is accepted.
    const member = new WebSocket(`${listener.address}/ring?from=1`, {
      headers: { authorization: `Bearer ${RING_TOKEN}` },
    });
    await new Promise((resolve, reject) => {
      member.once("open", resolve);
      member.once("error", reject);
    });
    member.terminate();
  } finally {
    await listener.close();
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

/** Resolves to the error `promise` rejects with and the ms it took; fails if it resolves or takes limitMs. */
async function failure(promise: Promise<unknown>, limitMs: number): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>(
    (_, reject) =>
      (timer = setTimeout(() => reject(new Error(`still pending after ${limitMs} ms`)), limitMs)),
  );
  try {
    await Promise.race([promise, hung]);
  } catch (error) {
    if (error instanceof Error && error.message.startsWith("still pending")) throw error;
    return { error, ms: performance.now() - started };
  } finally {
    clearTimeout(timer);
  }
  throw new Error("resolved; expected a failure");
}

test(
  "ws ring - a neighbour closing its sockets mid-exchange fails the ranks waiting on it at once",
  { timeout: 15_000 },
  async () => {
    const worldSize = 3;
    const listeners = await Promise.all(
      Array.from({ length: worldSize }, () => listenWsRing("127.0.0.1", 0)),
    );
    try {
      const transports = await Promise.all(
        listeners.map((listener, rank) =>
          listener.connect(rank, worldSize, listeners[(rank + 1) % worldSize]?.address ?? ""),
        ),
      );
      // Ranks 0 and 1 start an exchange that rank 2 never joins; then rank 2 goes away. Their deadline is far.
      const rings = transports.map((transport) => new RingAllReduce(transport, { messageTimeoutMs: 60_000 }));
      const waiting = [0, 1].map(
        (rank) => rings[rank]?.allReduce(new Float32Array(1000), 0) ?? Promise.resolve(),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const failures = waiting.map((pending) => failure(pending, 2_000));
      await listeners[2]?.close();
      for (const [rank, { error, ms }] of (await Promise.all(failures)).entries()) {
        assert.ok(error instanceof RingError, String(error));
        assert.equal(error.rank, rank);
        // Rank 0 hears from rank 2; rank 1 sends to it.
        const link =
          rank === 0 ? /the link from rank 2 closed/ : /the link to rank 2 \(ws:\/\/[^)]+\) closed/;
        assert.match(
          error.message,
          new RegExp(`^all-reduce on rank ${rank}: the ring link failed: ws ring: `),
        );
        assert.match(error.message, link);
        assert.match(error.message, /\(1000 ring closed\)$/);
        assert.ok(ms < 1_000, `rank ${rank} noticed after ${ms} ms`);
      }
    } finally {
      await Promise.all(listeners.map((listener) => listener.close()));
    }
  },
);

test(
  "ws ring - connect fails after connectTimeoutMs when the previous rank never connects",
  { timeout: 15_000 },
  async () => {
    const first = await listenWsRing("127.0.0.1", 0);
    const second = await listenWsRing("127.0.0.1", 0);
    try {
      // Rank 0 reaches rank 1's server, but rank 1 never joins, so nothing connects to rank 0.
      const { error, ms } = await failure(
        first.connect(0, 2, second.address, { connectTimeoutMs: 300 }),
        3_000,
      );
      assert.match(String(error), /ws ring: rank 1 did not connect to ws:\/\/127\.0\.0\.1:\d+ within 300 ms/);
      assert.ok(ms >= 290 && ms < 1_500, `${ms} ms`);
    } finally {
      await Promise.all([first.close(), second.close()]);
    }
  },
);

test(
  "ws ring - connect fails after connectTimeoutMs when the next rank accepts TCP but never answers",
  { timeout: 15_000 },
  async () => {
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const address = silent.address();
    const port = typeof address === "object" && address !== null ? address.port : 0;
    const listener = await listenWsRing("127.0.0.1", 0);
    try {
      const joining = listener.connect(0, 2, `ws://127.0.0.1:${port}`, { connectTimeoutMs: 300 });
      const { error, ms } = await failure(joining, 3_000);
      assert.match(String(error), /could not connect to ws:\/\/127\.0\.0\.1:\d+\/ring\?from=0 within 300 ms/);
      assert.ok(ms >= 290 && ms < 1_500, `${ms} ms`);
    } finally {
      await listener.close();
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  },
);

test(
  "allreduce over NATS - losing the server fails a waiting exchange at once, not at its deadline",
  { timeout: 15_000 },
  async (t) => {
    const binary = requireNatsServer(t);
    if (binary === undefined) return;
    const server = await startNatsServer(binary);
    let stopped = false;
    t.after(() => (stopped ? undefined : server.stop()));
    const connections = await Promise.all([0, 1].map(() => connect({ servers: server.url })));
    try {
      const transports = await Promise.all(
        connections.map((nc, rank) => createNatsRingTransport(nc, "server-lost", rank, 2)),
      );
      // Rank 0 waits for rank 1, which never starts; then the server goes away.
      const ring = new RingAllReduce(transports[0] as RingTransport, { messageTimeoutMs: 60_000 });
      const pending = failure(ring.allReduce(new Float32Array(100), 0), 5_000);
      await new Promise((resolve) => setTimeout(resolve, 50));
      await server.stop();
      stopped = true;
      const { error, ms } = await pending;
      assert.ok(error instanceof RingError, String(error));
      assert.match(
        error.message,
        /rank 0: the ring link failed: NATS ring: disconnected from .*; messages to rank 0 may be lost/,
      );
      assert.ok(ms < 3_000, `${ms} ms`);
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  },
);

test(
  "allreduce over NATS - a re-formed ring (next generation) never hears the old one",
  { timeout: 15_000 },
  async (t) => {
    const binary = requireNatsServer(t);
    if (binary === undefined) return;
    const server = await startNatsServer(binary);
    t.after(() => server.stop());
    const connections = await Promise.all([0, 1].map(() => connect({ servers: server.url })));
    try {
      const old = await createNatsRingTransport(connections[0] as NatsConnection, "generations", 0, 2, {
        generation: 0,
      });
      const transports = await Promise.all(
        connections.map((nc, rank) => createNatsRingTransport(nc, "generations", rank, 2, { generation: 1 })),
      );
      const dropped: string[] = [];
      const rings = transports.map(
        (transport) => new RingAllReduce(transport, { onDropped: (r) => dropped.push(r) }),
      );
      // The old ring's rank 0 sends rank 1 a chunk with the very tag the new ring's exchange 0 uses first.
      await old.send(
        encodeMessage({ tag: packRingTag(0, 0, "reduce-scatter", 0), offset: 0, data: new Uint8Array(4) }),
      );
      await connections[0]?.flush();
      const inputs = rankInputs(2, 11, 9);
      const outputs = await Promise.all(
        rings.map((ring, rank) => ring.allReduce(Float32Array.from(inputs[rank] ?? []), 0)),
      );
      assertSummedAndIdentical(outputs, inputs);
      assert.deepEqual(dropped, []);
      await Promise.all([old, ...transports].map((transport) => transport.close()));
    } finally {
      await Promise.all(connections.map((nc) => nc.close()));
    }
  },
);
