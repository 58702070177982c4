// One rank of the all-reduce benchmark; bench/allreduce.ts starts N of these, one process each, and passes
// a RankConfig as the one argument. It says hello over NATS, joins the ring once told everyone's address,
// then for each size runs warm-ups and timed all-reduces, each after a barrier over NATS, checks the sum
// every time, and publishes its timed seconds. Exits 1 on any failure, and when its stdin closes (the
// bench is gone).
import { connect, type NatsConnection } from "nats";
import { createNatsRingTransport } from "../worker/allreduce/nats-transport.js";
import type { WireDtype } from "../shared/protocol.js";
import { RingAllReduce } from "../worker/allreduce/ring.js";
import type { RingTransport } from "../worker/allreduce/transport.js";
import { listenWsRing } from "../worker/allreduce/ws-transport.js";
import {
  benchSubjects,
  decodeBenchMessage,
  encodeBenchMessage,
  parseRankConfig,
  type RankConfig,
} from "./allreduce.js";

/**
 * Rank r's element i is (r + 1)·(1 + i mod PERIOD): small integers, so the sum over N ranks,
 * N(N+1)/2·(1 + i mod PERIOD), is exact in float32 whatever the order of additions. PERIOD is prime, so a
 * chunk added or copied at the wrong offset changes the sampled values.
 */
const PERIOD = 251;
/** Elements checked per all-reduce, evenly spaced (every segment and most chunks), plus the last one. */
const SAMPLES = 64;

function rankValues(rank: number, length: number): Float32Array {
  const values = new Float32Array(length);
  for (let i = 0; i < length; i++) values[i] = (rank + 1) * (1 + (i % PERIOD));
  return values;
}

/** Relative rounding of a narrowed wire's partial sums (each hop rounds once): exact for fp32. */
const UNIT_ROUNDOFF: Record<WireDtype, number> = { fp32: 0, bf16: 2 ** -9, fp16: 2 ** -12 };

function checkSum(buffer: Float32Array, worldSize: number, dtype: WireDtype, where: string): void {
  const rankSum = (worldSize * (worldSize + 1)) / 2;
  const check = (i: number) => {
    const expected = rankSum * (1 + (i % PERIOD));
    const got = buffer[i] ?? NaN;
    if (!(Math.abs(got - expected) <= worldSize * UNIT_ROUNDOFF[dtype] * expected))
      throw new Error(`${where}: element ${i} is ${buffer[i]}, the sum over ranks is ${expected}`);
  };
  const stride = Math.max(1, Math.floor(buffer.length / SAMPLES));
  for (let i = 0; i < buffer.length; i += stride) check(i);
  check(buffer.length - 1);
}

/** Resolves wait() once every rank has called it as often: each announces its arrival to all (echo included). */
class NatsBarrier {
  private readonly arrived = new Map<number, Set<number>>();
  private readonly waiters = new Map<number, { resolve: () => void; reject: (error: Error) => void }>();
  private nextKey = 0;
  private failure: Error | undefined;

  constructor(
    private readonly nc: NatsConnection,
    private readonly subject: string,
    private readonly rank: number,
    private readonly worldSize: number,
  ) {
    nc.subscribe(subject, {
      callback: (error, msg) => {
        try {
          if (error !== null) throw error;
          const message = decodeBenchMessage(msg.data, subject);
          if (message.type !== "barrier" || message.rank >= worldSize)
            throw new Error(`${subject}: unexpected ${JSON.stringify(message)}`);
          const ranks = this.arrived.get(message.key) ?? new Set<number>();
          this.arrived.set(message.key, ranks.add(message.rank));
          this.release(message.key);
        } catch (caught) {
          this.fail(caught instanceof Error ? caught : new Error(String(caught)));
        }
      },
    });
  }

  wait(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const key = this.nextKey++;
    const released = new Promise<void>((resolve, reject) => this.waiters.set(key, { resolve, reject }));
    this.nc.publish(this.subject, encodeBenchMessage({ type: "barrier", rank: this.rank, key }));
    return released;
  }

  fail(error: Error): void {
    this.failure ??= error;
    for (const waiter of this.waiters.values()) waiter.reject(error);
    this.waiters.clear();
  }

  private release(key: number): void {
    const waiter = this.waiters.get(key);
    if (waiter === undefined || (this.arrived.get(key)?.size ?? 0) < this.worldSize) return;
    this.waiters.delete(key);
    this.arrived.delete(key);
    waiter.resolve();
  }
}

function startMessage(nc: NatsConnection, subject: string): Promise<string[]> {
  return new Promise((resolve, reject) => {
    nc.subscribe(subject, {
      max: 1,
      callback: (error, msg) => {
        try {
          if (error !== null) throw error;
          const message = decodeBenchMessage(msg.data, subject);
          if (message.type !== "start") throw new Error(`${subject}: unexpected ${JSON.stringify(message)}`);
          resolve(message.addresses);
        } catch (caught) {
          reject(caught instanceof Error ? caught : new Error(String(caught)));
        }
      },
    });
  });
}

async function run(config: RankConfig): Promise<void> {
  const { rank, worldSize, plane, job } = config;
  const subjects = benchSubjects(job);
  const nc = await connect({ servers: config.natsUrl, name: `imtrain-bench-${job}-${rank}` });
  let closing = false;
  const barrier = new NatsBarrier(nc, subjects.barrier, rank, worldSize);
  nc.closed().then(
    (error) => {
      if (!closing) barrier.fail(new Error(`NATS closed${error ? `: ${error.message}` : ""}`));
    },
    () => undefined,
  );
  const ws = plane === "ws" ? await listenWsRing("127.0.0.1", 0) : undefined;
  let transport: RingTransport | undefined;
  try {
    const started = startMessage(nc, subjects.start);
    // Over NATS the ring subscription must exist before any rank can send: made before hello.
    if (plane === "nats") transport = await createNatsRingTransport(nc, job, rank, worldSize);
    await nc.flush();
    nc.publish(subjects.hello, encodeBenchMessage({ type: "hello", rank, address: ws?.address ?? "" }));
    const addresses = await started;
    if (ws !== undefined) {
      const next = addresses[(rank + 1) % worldSize];
      if (next === undefined) throw new Error(`no address for rank ${(rank + 1) % worldSize}`);
      transport = await ws.connect(rank, worldSize, next);
    }
    if (transport === undefined) throw new Error("no transport");
    const ring = new RingAllReduce(transport, {
      bucketBytes: config.bucketBytes,
      wireDtype: config.wireDtype,
    });

    let exchange = 0;
    for (const size of config.sizes) {
      const values = rankValues(rank, size.bytes / Float32Array.BYTES_PER_ELEMENT);
      const buffer = new Float32Array(values.length);
      const seconds: number[] = [];
      for (let iteration = 0; iteration < size.warmups + size.iterations; iteration++) {
        buffer.set(values); // the ring sums in place
        await barrier.wait();
        const start = performance.now();
        await ring.allReduce(buffer, exchange++);
        const elapsed = (performance.now() - start) / 1000;
        checkSum(
          buffer,
          worldSize,
          config.wireDtype,
          `rank ${rank}, ${size.bytes} bytes, iteration ${iteration}`,
        );
        if (iteration >= size.warmups) seconds.push(elapsed);
      }
      nc.publish(subjects.result, encodeBenchMessage({ type: "result", rank, bytes: size.bytes, seconds }));
    }
    // Nobody closes its links while a neighbour may still be receiving.
    await barrier.wait();
  } finally {
    closing = true;
    await transport?.close();
    await ws?.close();
    if (!nc.isClosed()) {
      await nc.flush();
      await nc.close();
    }
  }
}

process.stdin.on("close", () => {
  process.stderr.write("the bench is gone: exiting\n");
  process.exit(1);
});
process.stdin.resume();
run(parseRankConfig(process.argv[2])).then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
