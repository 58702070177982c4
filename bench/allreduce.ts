// The all-reduce benchmark, in nccl-tests terms. For each data plane, world size N and buffer size S:
//
//   seconds = median over iterations of the slowest rank's time for one ring all-reduce of S bytes
//   algbw   = S / seconds                    (GB/s, 1e9 bytes/s)
//   busbw   = algbw · 2(N−1)/N               (what each link carries: comparable across N, and with the
//                                              tcp_loopback ceiling)
//
// Each rank is its own process (allreduce-rank.ts), as real workers are: ranks sharing one thread would take
// turns to send, sum and receive. The ranks meet over NATS (hello → start), every iteration starts after a
// barrier over NATS, and every rank checks sampled elements of the sum, so a broken ring fails the bench
// instead of reporting a fast number. Ranks, NATS server and sockets are cleaned up on error and on
// SIGINT/SIGTERM; a rank whose parent is gone exits by itself (its stdin closes).
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createServer, connect as tcpConnect, type AddressInfo, type Socket } from "node:net";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection, type Subscription } from "nats";
import { EmbeddedNatsServer, findNatsServer, startNatsServerProcess } from "../coordinator/nats/index.js";
import { OptionError } from "../shared/errors.js";
import { parameterCount } from "../shared/metrics/flops.js";
import { presetConfig } from "../shared/model/config.js";
import { DATA_PLANES, WIRE_DTYPES, type DataPlane, type WireDtype } from "../shared/protocol.js";
import { DEFAULT_BUCKET_BYTES, DEFAULT_CHUNK_BYTES, MAX_WORLD_SIZE } from "../worker/allreduce/index.js";
import { wireBytesPerFloat } from "../worker/allreduce/wire-dtype.js";
import { figure, type Emit } from "./figure.js";

export type NatsChoice = "auto" | "embedded";

export interface AllReduceBenchOptions {
  /** Buffer sizes in bytes, multiples of 4 (float32). */
  readonly sizesBytes: number[];
  readonly worldSizes: number[];
  readonly planes: DataPlane[];
  /** Wire formats to measure (--allreduce-dtype); busbw counts the fp32 gradient's bytes for each. */
  readonly dtypes: WireDtype[];
  /** Timed iterations per size; sizes above TIMED_BYTES_PER_SIZE / iterations get fewer (at least 1). */
  readonly iterations: number;
  /** "auto" (default): nats-server when installed, else the embedded broker. */
  readonly nats?: NatsChoice;
}

/**
 * Bytes all-reduced in the timed iterations of one size: 64 MiB gets 8 iterations, 16 MiB the default 20,
 * GPT-2's 498 MB one. (At 128 MiB, 64 MiB's figure was the median of two, within this VM's noise.)
 */
const TIMED_BYTES_PER_SIZE = 512 * 2 ** 20;
const WARMUPS = 1;
/** A group (plane, N) that reports nothing for this long is hung: its ranks are killed. */
const STALL_MS = 90_000;
const TCP_BYTES = 256 * 2 ** 20;
const TCP_WRITE_BYTES = 2 ** 20;
const TCP_REPEATS = 3;
const RANK_ENTRY = fileURLToPath(new URL("./allreduce-rank.js", import.meta.url));
const PAIR_PEER_ENTRY = fileURLToPath(new URL("./tcp-pair-peer.js", import.meta.url));
/** What each of tcp_loopback_pair's two processes sends (and receives): a 2-rank ring's traffic for 64 MiB. */
const PAIR_BYTES = 64 * 2 ** 20;
/** How long one tcp_loopback_pair measurement may take before its processes are killed. */
const PAIR_TIMEOUT_MS = 60_000;

// ---- wire between the bench and its ranks (JSON over NATS) ----

export function benchSubjects(job: string) {
  const prefix = `imtrain-bench.${job}`;
  return {
    hello: `${prefix}.hello`,
    start: `${prefix}.start`,
    barrier: `${prefix}.barrier`,
    result: `${prefix}.result`,
  };
}

export type BenchMessage =
  /** rank → bench, once subscribed: its WebSocket address ("" over NATS). */
  | { type: "hello"; rank: number; address: string }
  /** bench → ranks, once all said hello: every rank's address, by rank. */
  | { type: "start"; addresses: string[] }
  /** rank → ranks: arrived at barrier `key`. */
  | { type: "barrier"; rank: number; key: number }
  /** rank → bench: its timed iterations of one size, in seconds. */
  | { type: "result"; rank: number; bytes: number; seconds: number[] };

export interface SizePlan {
  readonly bytes: number;
  readonly warmups: number;
  readonly iterations: number;
}

/** What a rank process is told in its one argument (JSON). */
export interface RankConfig {
  readonly natsUrl: string;
  readonly job: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly plane: DataPlane;
  readonly wireDtype: WireDtype;
  readonly bucketBytes: number;
  readonly sizes: SizePlan[];
}

export function encodeBenchMessage(message: BenchMessage): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(message));
}

const isInt = (value: unknown): value is number => Number.isSafeInteger(value);
const isIndex = (value: unknown): value is number => isInt(value) && value >= 0;

export function decodeBenchMessage(data: Uint8Array, subject: string): BenchMessage {
  const text = new TextDecoder().decode(data);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (typeof value === "object" && value !== null) {
    const m = value as Record<string, unknown>;
    const { rank, key, bytes, address, addresses, seconds } = m;
    switch (m.type) {
      case "hello":
        if (isIndex(rank) && typeof address === "string") return { type: "hello", rank, address };
        break;
      case "start":
        if (Array.isArray(addresses) && addresses.every((a) => typeof a === "string"))
          return { type: "start", addresses: addresses as string[] };
        break;
      case "barrier":
        if (isIndex(rank) && isIndex(key)) return { type: "barrier", rank, key };
        break;
      case "result":
        if (
          isIndex(rank) &&
          isIndex(bytes) &&
          Array.isArray(seconds) &&
          seconds.every((s) => typeof s === "number" && Number.isFinite(s))
        )
          return { type: "result", rank, bytes, seconds: seconds as number[] };
        break;
    }
  }
  throw new Error(`${subject}: malformed bench message ${JSON.stringify(text.slice(0, 200))}`);
}

export function parseRankConfig(text: string | undefined): RankConfig {
  const config = JSON.parse(text ?? "null") as RankConfig | null;
  if (
    config === null ||
    typeof config.natsUrl !== "string" ||
    typeof config.job !== "string" ||
    !isInt(config.worldSize) ||
    !isInt(config.rank) ||
    config.rank < 0 ||
    config.rank >= config.worldSize ||
    !DATA_PLANES.includes(config.plane) ||
    !WIRE_DTYPES.includes(config.wireDtype) ||
    !isInt(config.bucketBytes) ||
    !Array.isArray(config.sizes) ||
    !config.sizes.every((s) => isInt(s.bytes) && s.bytes % 4 === 0 && isInt(s.warmups) && isInt(s.iterations))
  )
    throw new Error(`allreduce rank: bad config ${text ?? "(none)"}`);
  return config;
}

// ---- flags ----

const UNITS: Record<string, number> = { "": 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30 };
/** "gpt2" as a size: the float32 gradient of GPT-2 124M (50,257-token vocabulary, tied embeddings). */
export const GPT2_GRADIENT_BYTES = 4 * parameterCount(presetConfig("gpt2", 50_257));

function parseBytes(option: string, text: string): number {
  if (text.trim().toLowerCase() === "gpt2") return GPT2_GRADIENT_BYTES;
  const match = /^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?\s*$/i.exec(text);
  const unit = UNITS[(match?.[2] ?? "").toLowerCase()];
  const bytes = match === null || unit === undefined ? NaN : Number(match[1]) * unit;
  if (!Number.isSafeInteger(bytes) || bytes < 4 || bytes % 4 !== 0)
    throw new OptionError(
      option,
      `"${text}" is not a whole number of float32s (4 bytes), e.g. 1KB, 64MiB, or gpt2 (GPT-2 124M's gradient)`,
    );
  return bytes;
}

/**
 * "1KB..64MB" → 1 KiB, 4 KiB, …, 64 MiB (×4 steps; the end is included even off the grid); "4KB,1MB" → those;
 * both can be mixed. Units are binary: KB = KiB. Sorted, without repeats.
 */
export function parseByteSizes(option: string, spec: string): number[] {
  const sizes = new Set<number>();
  for (const item of spec.split(",").filter((s) => s.trim() !== "")) {
    const [from, to, extra] = item.split("..");
    if (extra !== undefined) throw new OptionError(option, `"${item}" is not SIZE or FROM..TO`);
    const first = parseBytes(option, from ?? "");
    const last = to === undefined ? first : parseBytes(option, to);
    if (last < first) throw new OptionError(option, `"${item}" runs backwards`);
    for (let bytes = first; bytes < last; bytes *= 4) sizes.add(bytes);
    sizes.add(last);
  }
  if (sizes.size === 0) throw new OptionError(option, "no sizes given");
  return [...sizes].sort((a, b) => a - b);
}

export function parseWorldSizes(option: string, spec: string): number[] {
  const sizes = spec.split(",").map((s) => Number(s.trim()));
  if (sizes.length === 0 || !sizes.every((n) => Number.isSafeInteger(n) && n >= 2 && n <= MAX_WORLD_SIZE))
    throw new OptionError(option, `"${spec}" is not a list of world sizes in [2, ${MAX_WORLD_SIZE}]`);
  return [...new Set(sizes)];
}

/** "a,b" → the distinct choices named, each one of `choices`; one line naming the flag otherwise. */
function parseChoices<T extends string>(option: string, spec: string, choices: readonly T[]): T[] {
  const names = spec.split(",").map((s) => s.trim());
  const valid = (name: string): name is T => (choices as readonly string[]).includes(name);
  if (names.length === 0 || !names.every(valid))
    throw new OptionError(option, `"${spec}" is not a list of ${choices.join(", ")}`);
  return [...new Set(names)];
}

export function parseWireDtypes(option: string, spec: string): WireDtype[] {
  return parseChoices(option, spec, WIRE_DTYPES);
}

export function parsePlanes(option: string, spec: string): DataPlane[] {
  return parseChoices(option, spec, DATA_PLANES);
}

// ---- the bench ----

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length / 2;
  return Number.isInteger(mid)
    ? ((sorted[mid - 1] ?? NaN) + (sorted[mid] ?? NaN)) / 2
    : (sorted[Math.floor(mid)] ?? NaN);
}

function planSizes(sizesBytes: readonly number[], iterations: number): SizePlan[] {
  return sizesBytes.map((bytes) => ({
    bytes,
    warmups: WARMUPS,
    iterations: Math.max(1, Math.min(iterations, Math.floor(TIMED_BYTES_PER_SIZE / bytes))),
  }));
}

interface Bus {
  readonly url: string;
  readonly kind: "nats-server" | "embedded";
  stop(): Promise<void>;
}

async function startBus(choice: NatsChoice): Promise<Bus> {
  const binary = choice === "embedded" ? undefined : findNatsServer();
  if (binary !== undefined) {
    const server = await startNatsServerProcess(binary);
    return { url: server.url, kind: "nats-server", stop: () => server.stop() };
  }
  const embedded = await EmbeddedNatsServer.start();
  return { url: embedded.url, kind: "embedded", stop: () => embedded.close() };
}

/** The messages of one subject, in order, decoded; next() waits for one. */
class Inbox {
  private readonly queue: BenchMessage[] = [];
  private waiter: { resolve: (m: BenchMessage) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;
  private readonly subscription: Subscription;

  constructor(nc: NatsConnection, subject: string) {
    this.subscription = nc.subscribe(subject, {
      callback: (error, msg) => {
        try {
          if (error !== null) throw error;
          const message = decodeBenchMessage(msg.data, subject);
          if (this.waiter === undefined) this.queue.push(message);
          else this.waiter.resolve(message);
        } catch (caught) {
          this.failure ??= caught instanceof Error ? caught : new Error(String(caught));
          this.waiter?.reject(this.failure);
        }
        this.waiter = undefined;
      },
    });
  }

  next(): Promise<BenchMessage> {
    const message = this.queue.shift();
    if (message !== undefined) return Promise.resolve(message);
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  close(): void {
    this.subscription.unsubscribe();
  }
}

interface RankProcess {
  /** Resolves when the process exits with 0; rejects when it fails (not when stop() kills it). */
  readonly finished: Promise<void>;
  /** Kills it if it still runs; resolves once it has exited. */
  stop(): Promise<void>;
}

function spawnRank(config: RankConfig, label: string): RankProcess {
  // stdin stays open: the rank takes its closing as the bench being gone.
  const child = spawn(process.execPath, [RANK_ENTRY, JSON.stringify(config)], {
    stdio: ["pipe", "ignore", "pipe"],
  });
  let pending = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    const lines = (pending + text).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) process.stderr.write(`[${label}] ${line}\n`);
  });
  let stopping = false;
  const exited = new Promise<string>((resolve) => {
    child.once("error", (error) => resolve(`could not run (${error.message})`));
    child.once("close", (code, signal) => {
      if (pending !== "") process.stderr.write(`[${label}] ${pending}\n`);
      resolve(code === 0 ? "" : code !== null ? `exited with code ${code}` : `was killed by ${signal}`);
    });
  });
  const finished = exited.then((failure) => {
    if (failure === "") return;
    if (stopping) return new Promise<void>(() => undefined);
    throw new Error(`${label} ${failure}`);
  });
  return {
    finished,
    async stop() {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Rejects once `kick` has not been called for `ms`. */
function stallWatchdog(ms: number, label: string) {
  let timer: NodeJS.Timeout | undefined;
  let fire: (error: Error) => void = () => undefined;
  const expired = new Promise<never>((_, reject) => (fire = reject));
  const kick = () => {
    clearTimeout(timer);
    timer = setTimeout(() => fire(new Error(`${label}: no progress for ${ms / 1000} s`)), ms);
  };
  kick();
  return { expired, kick, stop: () => clearTimeout(timer) };
}

interface Group {
  readonly plane: DataPlane;
  readonly dtype: WireDtype;
  readonly worldSize: number;
  readonly sizes: readonly SizePlan[];
  /** One loopback TCP stream's GB/s: what busbw is measured against. */
  readonly ceilingGbps: number;
}

/** Starts N ranks for one plane, collects their times size by size and emits one record per size. */
async function runGroup(
  nc: NatsConnection,
  bus: Bus,
  group: Group,
  emit: Emit,
  interrupted: Promise<never>,
): Promise<void> {
  const { plane, dtype, worldSize, sizes } = group;
  const label = `allreduce ${plane}${dtype === "fp32" ? "" : ` ${dtype}`} N=${worldSize}`;
  const job = `${plane}-${dtype}-${worldSize}-${process.pid}`;
  const subjects = benchSubjects(job);
  const hellos = new Inbox(nc, subjects.hello);
  const results = new Inbox(nc, subjects.result);
  await nc.flush(); // subscribed before any rank can say hello
  const watchdog = stallWatchdog(STALL_MS, label);
  const ranks = Array.from({ length: worldSize }, (_, rank) =>
    spawnRank(
      {
        natsUrl: bus.url,
        job,
        rank,
        worldSize,
        plane,
        wireDtype: dtype,
        bucketBytes: DEFAULT_BUCKET_BYTES,
        sizes: [...sizes],
      },
      `${label} rank ${rank}`,
    ),
  );

  const protocol = async () => {
    const addresses: string[] = [];
    while (addresses.filter((a) => a !== undefined).length < worldSize) {
      const hello = await hellos.next();
      if (hello.type !== "hello" || hello.rank >= worldSize || addresses[hello.rank] !== undefined)
        throw new Error(`${label}: unexpected ${JSON.stringify(hello)}`);
      addresses[hello.rank] = hello.address;
      watchdog.kick();
    }
    nc.publish(subjects.start, encodeBenchMessage({ type: "start", addresses }));

    // Ranks publish each size when done with it; they may run one size apart, so collect by size.
    const bySize = new Map<number, Map<number, number[]>>(sizes.map((s) => [s.bytes, new Map()]));
    for (const plan of sizes) {
      const timesByRank = bySize.get(plan.bytes) ?? new Map<number, number[]>();
      while (timesByRank.size < worldSize) {
        const result = await results.next();
        const expected = sizes.find((s) => s.bytes === (result.type === "result" ? result.bytes : -1));
        const byRank = bySize.get(expected?.bytes ?? -1);
        if (
          result.type !== "result" ||
          result.rank >= worldSize ||
          byRank === undefined ||
          byRank.has(result.rank) ||
          result.seconds.length !== expected?.iterations
        )
          throw new Error(`${label}: unexpected ${JSON.stringify(result)}`);
        byRank.set(result.rank, result.seconds);
        watchdog.kick();
      }
      // One iteration takes as long as its slowest rank.
      const times = [...timesByRank.values()];
      const perIteration = Array.from({ length: plan.iterations }, (_, i) =>
        Math.max(...times.map((t) => t[i] ?? NaN)),
      );
      const seconds = median(perIteration);
      const algbw = plan.bytes / seconds / 1e9;
      const busbw = (algbw * 2 * (worldSize - 1)) / worldSize;
      const details = {
        plane,
        world_size: worldSize,
        bytes: plan.bytes,
        wire_dtype: dtype,
        // The ring's bandwidth bound: each link carries 2(N−1)/N of the bytes sent, at one TCP stream's rate.
        bound_seconds:
          (((2 * (worldSize - 1)) / worldSize) * ((plan.bytes / 4) * wireBytesPerFloat(dtype))) /
          (group.ceilingGbps * 1e9),
        iterations: plan.iterations,
        seconds,
        algbw_gbps: algbw,
        nats: bus.kind,
        bucket_bytes: DEFAULT_BUCKET_BYTES,
        chunk_bytes: DEFAULT_CHUNK_BYTES,
      };
      emit(
        figure(
          `allreduce/${plane}/n${worldSize}/${plan.bytes}${dtype === "fp32" ? "" : `/${dtype}`}`,
          busbw,
          "GB/s busbw",
          details,
          group.ceilingGbps,
        ),
      );
    }
    await Promise.all(ranks.map((rank) => rank.finished));
  };

  try {
    await Promise.race([
      protocol(),
      ...ranks.map((rank) => rank.finished.then(() => new Promise<never>(() => undefined))),
      watchdog.expired,
      interrupted,
    ]);
  } finally {
    watchdog.stop();
    hellos.close();
    results.close();
    await Promise.all(ranks.map((rank) => rank.stop()));
  }
}

/** Seconds for `bytes` through one loopback TCP stream. Both ends run on this one thread, as a rank's do. */
async function loopbackSeconds(bytes: number): Promise<number> {
  const server = createServer({ noDelay: true });
  const sockets: Socket[] = [];
  try {
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const accepted = once(server, "connection");
    const client = tcpConnect((server.address() as AddressInfo).port, "127.0.0.1");
    sockets.push(client);
    await once(client, "connect");
    const [receiver] = (await accepted) as [Socket];
    sockets.push(receiver);
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      receiver.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received >= bytes) resolve();
      });
      receiver.once("error", reject);
      receiver.once("close", () => reject(new Error(`tcp loopback: closed after ${received} bytes`)));
    });
    done.catch(() => undefined); // awaited below; a failed write must not leave it unhandled
    const block = Buffer.alloc(TCP_WRITE_BYTES, 0x5a);
    const start = performance.now();
    for (let sent = 0; sent < bytes; sent += block.length) {
      const piece = sent + block.length <= bytes ? block : block.subarray(0, bytes - sent);
      if (!client.write(piece)) await once(client, "drain");
    }
    await done;
    return (performance.now() - start) / 1000;
  } finally {
    for (const socket of sockets) socket.destroy();
    server.close();
  }
}

/** One loopback TCP stream's GB/s, emitted and returned (the all-reduce's ceiling). */
async function benchTcpLoopback(emit: Emit): Promise<number> {
  await loopbackSeconds(TCP_BYTES / 8); // warm-up
  const times: number[] = [];
  for (let i = 0; i < TCP_REPEATS; i++) times.push(await loopbackSeconds(TCP_BYTES));
  const seconds = median(times);
  const gbps = TCP_BYTES / seconds / 1e9;
  emit(figure("tcp_loopback", gbps, "GB/s", { bytes: TCP_BYTES, seconds }));
  return gbps;
}

/**
 * Seconds for two processes to each send PAIR_BYTES to the other over loopback TCP while receiving as
 * much: the traffic pattern of a 2-rank ring, with nothing but the sockets. The slower process's time.
 */
async function pairSeconds(): Promise<number> {
  const peers = [0, 1].map(() =>
    spawn(process.execPath, [PAIR_PEER_ENTRY, String(PAIR_BYTES)], { stdio: ["pipe", "pipe", "inherit"] }),
  );
  const watchdog = stallWatchdog(PAIR_TIMEOUT_MS, "tcp-pair");
  try {
    const lines = peers.map((peer) => createInterface({ input: peer.stdout })[Symbol.asyncIterator]());
    // The next line of each peer: its port, then its seconds.
    const nextLines = () =>
      Promise.race([
        Promise.all(
          lines.map(async (peerLines, i) => {
            const line = await peerLines.next();
            if (line.done === true) throw new Error(`tcp-pair: peer ${i} exited without answering`);
            return line.value;
          }),
        ),
        watchdog.expired,
      ]);
    const [port0, port1] = await nextLines();
    peers[0]?.stdin.write(`${port1}\n`);
    peers[1]?.stdin.write(`${port0}\n`);
    const seconds = (await nextLines()).map(Number);
    if (seconds.some((s) => !(s > 0))) throw new Error(`tcp-pair: unreadable times ${seconds.join(", ")}`);
    return Math.max(...seconds);
  } finally {
    watchdog.stop();
    for (const peer of peers) peer.kill("SIGKILL");
  }
}

/**
 * tcp_loopback_pair: GB/s each of two processes moves each way when both send to each other at once, the
 * 2-rank ring's pattern. Not the all-reduce's ceiling (that stays one stream), but where this machine's
 * cores, not the transport, bound an N=2 ring: read allreduce/…/n2's busbw against it too.
 */
async function benchTcpPair(emit: Emit): Promise<void> {
  await pairSeconds(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < TCP_REPEATS; i++) times.push(await pairSeconds());
  const seconds = median(times);
  emit(figure("tcp_loopback_pair", PAIR_BYTES / seconds / 1e9, "GB/s", { bytes: PAIR_BYTES, seconds }));
}

/**
 * Emits tcp_loopback (the ceiling), tcp_loopback_pair (where N = 2 is measured), then one allreduce record per (plane, world size, size). Throws if a rank
 * fails, a sum is wrong, a group stalls or SIGINT/SIGTERM arrives; everything it started is stopped first.
 */
export async function benchAllReduce(emit: Emit, options: AllReduceBenchOptions): Promise<void> {
  if (!Number.isSafeInteger(options.iterations) || options.iterations < 1)
    throw new RangeError(`allreduce bench: iterations ${options.iterations} is not a positive integer`);
  for (const bytes of options.sizesBytes)
    if (!Number.isSafeInteger(bytes) || bytes < 4 || bytes % 4 !== 0)
      throw new RangeError(`allreduce bench: size ${bytes} is not a positive multiple of 4 bytes`);
  const sizes = planSizes(
    [...new Set(options.sizesBytes)].sort((a, b) => a - b),
    options.iterations,
  );

  let onSignal: () => void = () => undefined;
  const interrupted = new Promise<never>((_, reject) => {
    onSignal = () => reject(new Error("allreduce bench: interrupted"));
  });
  interrupted.catch(() => undefined); // raced by each group; a signal between groups fails the next one
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const ceilingGbps = await benchTcpLoopback(emit);
    if (options.worldSizes.includes(2)) await benchTcpPair(emit);
    const bus = await startBus(options.nats ?? "auto");
    try {
      const nc = await connect({ servers: bus.url, name: "imtrain-bench" });
      try {
        for (const plane of options.planes)
          for (const dtype of options.dtypes)
            for (const worldSize of options.worldSizes)
              await runGroup(nc, bus, { plane, dtype, worldSize, sizes, ceilingGbps }, emit, interrupted);
      } finally {
        await nc.close();
      }
    } finally {
      await bus.stop();
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}
