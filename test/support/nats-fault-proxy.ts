// A fault injector for everything on the bus: a TCP proxy in front of nats-server that loses, duplicates
// and delays the messages the server delivers to its clients (MSG/HMSG frames whose subject matches), as
// a flaky network or an overloaded server would, driven by a seeded RNG. Control messages, heartbeats,
// join replies and NATS-plane ring chunks all pass through it. What clients send, and the protocol's own
// lines (INFO, PING, PONG, +OK, -ERR), pass untouched.
//
// A delay holds back the connection's whole stream from that frame on (NATS delivers in order on a
// connection, so a slow link stalls, it does not reorder). Written by hand: the NATS client protocol's
// framing is two line shapes, and no npm package proxies it.
import { createServer, connect as connectTcp, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { mulberry32 } from "../../shared/random.js";

export interface BusFaultPlan {
  readonly seed: number;
  readonly dropProbability: number;
  readonly duplicateProbability: number;
  readonly delayProbability: number;
  readonly delayMs: number;
  /** Only messages on matching subjects are faulted. */
  readonly subjects: RegExp;
}

export interface BusFaultCounts {
  delivered: number;
  dropped: number;
  duplicated: number;
  delayed: number;
}

export interface NatsFaultProxy {
  /** Give this to clients instead of the server's URL. */
  readonly url: string;
  readonly counts: Readonly<BusFaultCounts>;
  stop(): Promise<void>;
}

const CRLF = Buffer.from("\r\n");

/** One server-to-client frame: its bytes, and the subject if it is a message. */
interface Frame {
  readonly bytes: Buffer;
  readonly subject?: string;
}

/**
 * Splits the server's stream into frames. `MSG <subject> <sid> [reply] <bytes>` and `HMSG <subject> <sid>
 * [reply] <header bytes> <total bytes>` carry a payload of the last field's size, then CRLF; every other
 * line is a frame on its own. Returns the frames complete in `buffer` and what is left over.
 */
export function splitFrames(buffer: Buffer): { frames: Frame[]; rest: Buffer } {
  const frames: Frame[] = [];
  let start = 0;
  for (;;) {
    const lineEnd = buffer.indexOf(CRLF, start);
    if (lineEnd < 0) break;
    const line = buffer.toString("latin1", start, lineEnd);
    const fields = line.split(" ");
    const verb = fields[0]?.toUpperCase();
    if (verb !== "MSG" && verb !== "HMSG") {
      frames.push({ bytes: buffer.subarray(start, lineEnd + 2) });
      start = lineEnd + 2;
      continue;
    }
    const size = Number(fields.at(-1));
    if (!Number.isSafeInteger(size) || size < 0) throw new Error(`nats fault proxy: bad frame "${line}"`);
    const end = lineEnd + 2 + size + 2;
    if (buffer.length < end) break;
    frames.push({ bytes: buffer.subarray(start, end), ...(fields[1] ? { subject: fields[1] } : {}) });
    start = end;
  }
  return { frames, rest: buffer.subarray(start) };
}

export async function startNatsFaultProxy(upstreamUrl: string, plan: BusFaultPlan): Promise<NatsFaultProxy> {
  const upstream = new URL(upstreamUrl);
  const random = mulberry32(plan.seed);
  const counts: BusFaultCounts = { delivered: 0, dropped: 0, duplicated: 0, delayed: 0 };
  const sockets = new Set<Socket>();

  const proxyConnection = (client: Socket) => {
    const server = connectTcp(Number(upstream.port), upstream.hostname);
    sockets.add(client).add(server);
    const closeBoth = () => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    client.on("error", closeBoth).on("close", closeBoth);
    server.on("error", closeBoth).on("close", closeBoth);
    client.pipe(server);
    // Frames go out in order through one chain; a delay stalls what follows it.
    let output = Promise.resolve();
    const emit = (bytes: Buffer, delayMs = 0) => {
      output = output.then(async () => {
        if (delayMs > 0) await sleep(delayMs);
        if (!client.destroyed) client.write(bytes);
      });
    };
    let pending = Buffer.alloc(0);
    server.on("data", (chunk: Buffer) => {
      let split: ReturnType<typeof splitFrames>;
      try {
        split = splitFrames(Buffer.concat([pending, chunk]));
      } catch (error) {
        process.stderr.write(`${(error as Error).message}\n`);
        closeBoth();
        return;
      }
      pending = Buffer.from(split.rest);
      for (const frame of split.frames) {
        if (frame.subject === undefined || !plan.subjects.test(frame.subject)) {
          emit(frame.bytes);
          continue;
        }
        const bytes = Buffer.from(frame.bytes); // the chunk's memory is reused once this returns
        if (random() < plan.dropProbability) {
          counts.dropped++;
          continue;
        }
        const delayMs = random() < plan.delayProbability ? plan.delayMs : 0;
        if (delayMs > 0) counts.delayed++;
        emit(bytes, delayMs);
        counts.delivered++;
        if (random() < plan.duplicateProbability) {
          counts.duplicated++;
          emit(bytes);
        }
      }
    });
  };

  const listener: Server = createServer(proxyConnection);
  await new Promise<void>((resolve, reject) => {
    listener.once("error", reject);
    listener.listen(0, "127.0.0.1", () => resolve());
  });
  const address = listener.address();
  if (address === null || typeof address === "string") throw new Error("nats fault proxy: no port");
  return {
    url: `nats://127.0.0.1:${address.port}`,
    counts,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    },
  };
}
