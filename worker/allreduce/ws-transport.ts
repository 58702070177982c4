// The ring over direct WebSocket links: each rank runs a server that its previous rank connects to, and a
// client to the next rank's server; binary frames, each ring chunk as two messages in a row on the link:
// its msgpack envelope, then its floats' bytes straight from the gradient buffer (transport.ts, RingFrames).
// The link is one ordered TCP stream, so the receiver pairs them by arrival. The caller exchanges the
// addresses (over NATS) between listenWsRing and connect. A connection must present the job's ring token (the
// coordinator makes one per job and sends it with the job over NATS, which is authenticated): a process that
// is not a rank of this job is refused at the handshake (401), so nothing reaches the sums. The links are not
// encrypted: on a network others can read, use --data-plane nats over TLS.
//
// Every wait is bounded: connect resolves once both links are up (to the next rank, from the previous one)
// and fails after connectTimeoutMs otherwise, each opening handshake included; a link that closes or
// errors later fails the transport at once (onError), so a rank waiting on it does not wait for a deadline.
import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import { WebSocket, WebSocketServer, type RawData } from "ws";
import { LinkEvents } from "./link-events.js";
import { checkRingPosition, type RingMessage, type RingTransport } from "./transport.js";

/** Frames larger than this are refused by the receiving server (close code 1009). */
export const WS_MAX_PAYLOAD_BYTES = 64 * 2 ** 20;
export const WS_CONNECT_TIMEOUT_MS = 10_000;
/** How long a close handshake may take before the socket is cut. */
const CLOSE_GRACE_MS = 1_000;
const FIRST_RETRY_MS = 20;
const LAST_RETRY_MS = 500;

export interface WsRingOptions {
  /** Largest frame this rank's server accepts and, so, the largest message its transport sends. */
  readonly maxPayloadBytes?: number;
  /** The job's ring token: peers must present it, and this rank presents it to its next rank. */
  readonly token?: string;
  /** Told of each connection refused for a missing or wrong token (to log and count it). */
  readonly onRefused?: (detail: string) => void;
}

export interface WsConnectOptions {
  /**
   * How long joining may take, in ms (default WS_CONNECT_TIMEOUT_MS): retrying while the next rank's server
   * is not up yet, and waiting for the previous rank to connect.
   */
  readonly connectTimeoutMs?: number;
}

export interface WsRingListener {
  /** ws://host:port of this rank's server, for its previous rank to connect to. */
  readonly address: string;
  /**
   * Joins the ring: connects to the next rank and takes the connection from the previous one; rejects if
   * either is not up within connectTimeoutMs (close the listener then).
   */
  connect(
    rank: number,
    worldSize: number,
    nextAddress: string,
    options?: WsConnectOptions,
  ): Promise<RingTransport>;
  /** Stops listening and closes every socket; for a listener that never joins a ring. */
  close(): Promise<void>;
}

/** A connection from a peer: who it says it is, what it sent before it was accepted, a frame half-paired. */
interface Incoming {
  readonly from: number;
  readonly held: RingMessage[];
  envelope: Uint8Array | undefined;
}

function rawBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  return data instanceof ArrayBuffer ? new Uint8Array(data) : data;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function closeSocket(socket: WebSocket, code: number, reason: string): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.close(code, reason);
  });
}

/**
 * A client's frames must be masked (RFC 6455), to keep a browser's data from poisoning proxy caches. Between
 * imtrain's own ranks over a direct TCP link there is no proxy and no browser, and XOR-ing every gradient byte
 * in JavaScript cost about as much as adding them. A mask of zeros is a valid mask that changes nothing, and
 * `ws` skips the XOR for it on both ends.
 */
function zeroMask(mask: Uint8Array): void {
  mask.fill(0);
}

/** Whether an Authorization header carries `token` (compared in constant time). */
function presentsToken(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header ?? "");
  const expected = Buffer.from(`Bearer ${token}`);
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function openOnce(url: string, handshakeTimeoutMs: number, token: string | undefined): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    // Nothing but control frames comes back on this socket. The handshake timeout covers a peer that accepts
    // the TCP connection and never answers the upgrade (a stalled process, or not a ring server).
    const socket = new WebSocket(url, {
      maxPayload: 4096,
      handshakeTimeout: handshakeTimeoutMs,
      generateMask: zeroMask,
      perMessageDeflate: false, // floats do not compress, and deflate would cost more than the wire
      ...(token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } }),
    });
    const onError = (error: Error) => reject(error);
    socket.once("error", onError);
    socket.once("open", () => {
      socket.off("error", onError);
      resolve(socket);
    });
  });
}

/** Retries while the server is not up yet, until `timeoutMs` passes or `cancelled()` says to stop. */
async function openWithRetry(
  url: string,
  timeoutMs: number,
  token: string | undefined,
  cancelled: () => boolean,
): Promise<WebSocket> {
  const deadline = Date.now() + timeoutMs;
  for (let delayMs = FIRST_RETRY_MS; ; delayMs = Math.min(2 * delayMs, LAST_RETRY_MS)) {
    try {
      return await openOnce(url, Math.max(1, deadline - Date.now()), token);
    } catch (error) {
      if (cancelled()) throw new Error(`ws ring: closed while connecting to ${url}`, { cause: error });
      if (Date.now() + delayMs > deadline)
        throw new Error(
          `ws ring: could not connect to ${url} within ${timeoutMs} ms: ${errorMessage(error)}`,
          {
            cause: error,
          },
        );
    }
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}

/** The rank a connecting client says it is, from ws://host:port/ring?from=R. */
function claimedRank(request: IncomingMessage): number {
  const from = new URL(request.url ?? "/", "ws://peer").searchParams.get("from");
  return from === null || from === "" ? -1 : Number(from);
}

/** Starts this rank's server (port 0 = any free port); `address` is ready to hand to the previous rank. */
export async function listenWsRing(
  host: string,
  port: number,
  options: WsRingOptions = {},
): Promise<WsRingListener> {
  const maxPayloadBytes = options.maxPayloadBytes ?? WS_MAX_PAYLOAD_BYTES;
  const { token, onRefused } = options;
  const server = new WebSocketServer({
    host,
    port,
    maxPayload: maxPayloadBytes,
    ...(token === undefined
      ? {}
      : {
          verifyClient: (
            info: { req: IncomingMessage },
            done: (ok: boolean, code?: number, message?: string) => void,
          ) => {
            if (presentsToken(info.req.headers.authorization, token)) return done(true);
            const peer = `${info.req.socket.remoteAddress ?? "?"}:${info.req.socket.remotePort ?? "?"}`;
            onRefused?.(`a connection from ${peer} without this job's ring token`);
            done(false, 401, "not a rank of this job");
          },
        }),
  });
  await new Promise<void>((resolve, reject) => {
    server.once("listening", resolve);
    server.once("error", reject);
  });
  const bound = server.address();
  const boundPort = typeof bound === "object" && bound !== null ? bound.port : port;
  const address = `ws://${host.includes(":") ? `[${host}]` : host}:${boundPort}`;

  const events = new LinkEvents();
  /** Connections from peers, with what they sent while we did not yet know which one is our previous rank. */
  const incoming = new Map<WebSocket, Incoming>();
  let previousRank: number | undefined;
  let link: WebSocket | undefined;
  let client: WebSocket | undefined;
  let closing: Promise<void> | undefined;
  /** Settles the wait in connect() for the previous rank's connection. */
  let linked: { resolve(): void; reject(error: Error): void } | undefined;

  const accept = (socket: WebSocket, held: RingMessage[]) => {
    link = socket;
    for (const message of held) events.message(message);
    held.length = 0;
    linked?.resolve();
  };

  /** Resolves once the previous rank's connection is accepted; rejects after timeoutMs or on close. */
  const previousLinked = (timeoutMs: number): Promise<void> => {
    if (link !== undefined) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () =>
          linked?.reject(
            new Error(`ws ring: rank ${previousRank} did not connect to ${address} within ${timeoutMs} ms`),
          ),
        timeoutMs,
      );
      const settle = () => {
        clearTimeout(timer);
        linked = undefined;
      };
      linked = {
        resolve: () => {
          settle();
          resolve();
        },
        reject: (error) => {
          settle();
          reject(error);
        },
      };
    });
  };

  server.on("error", (error) =>
    events.error(new Error(`ws ring: server ${address} failed: ${error.message}`)),
  );
  server.on("connection", (socket, request) => {
    if (closing !== undefined) {
      socket.terminate();
      return;
    }
    const from = claimedRank(request);
    const entry: Incoming = { from, held: [], envelope: undefined };
    incoming.set(socket, entry);
    socket.on("error", (error) => {
      if (socket === link)
        events.error(new Error(`ws ring: the link from rank ${from} failed: ${error.message}`));
    });
    socket.on("close", (code, reason) => {
      incoming.delete(socket);
      if (socket === link && closing === undefined)
        events.error(new Error(`ws ring: the link from rank ${from} closed (${code} ${reason.toString()})`));
    });
    socket.on("message", (data, isBinary) => {
      if (!isBinary) {
        socket.close(1003, "ring messages are binary");
        return;
      }
      const bytes = rawBytes(data);
      // Every other message is an envelope, and the one after it that chunk's payload.
      if (entry.envelope === undefined) {
        entry.envelope = bytes;
        return;
      }
      const frames = { envelope: entry.envelope, payload: bytes };
      entry.envelope = undefined;
      if (socket === link) events.message(frames);
      else entry.held.push(frames);
    });
    if (previousRank === undefined) return;
    if (from === previousRank && link === undefined) accept(socket, entry.held);
    else socket.close(1008, `not the previous rank (${previousRank}) or already connected`);
  });

  const shutdown = (): Promise<void> => {
    linked?.reject(new Error("ws ring: closed while waiting for the previous rank to connect"));
    closing ??= (async () => {
      const sockets = [...incoming.keys(), ...(client === undefined ? [] : [client])];
      await Promise.all(sockets.map((socket) => closeSocket(socket, 1000, "ring closed")));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    })();
    return closing;
  };

  const connect = async (
    rank: number,
    worldSize: number,
    nextAddress: string,
    connectOptions: WsConnectOptions = {},
  ): Promise<RingTransport> => {
    if (previousRank !== undefined) throw new Error("ws ring: this listener has already joined a ring");
    checkRingPosition("ws ring", rank, worldSize);
    previousRank = (rank - 1 + worldSize) % worldSize;
    const transport: RingTransport = {
      rank,
      worldSize,
      maxMessageBytes: maxPayloadBytes,
      carriesFrames: true,
      send: (message) =>
        new Promise<void>((resolve, reject) => {
          if (message instanceof Uint8Array)
            return reject(new TypeError("ws ring: a ring message goes as frames (envelope, payload)"));
          if (client === undefined || client.readyState !== WebSocket.OPEN)
            return reject(new Error(`ws ring: the link to rank ${(rank + 1) % worldSize} is not open`));
          const { envelope, payload } = message;
          const largest = Math.max(envelope.length, payload.length);
          if (largest > maxPayloadBytes)
            return reject(new Error(`ws ring: a ${largest}-byte frame exceeds ${maxPayloadBytes} bytes`));
          client.send(envelope, { binary: true });
          client.send(payload, { binary: true }, (error) => (error ? reject(error) : resolve()));
        }),
      onMessage: (handler) => events.onMessage(handler),
      onError: (handler) => events.onError(handler),
      close: shutdown,
    };
    // One rank has no neighbours: no sockets at all.
    if (worldSize === 1) {
      await shutdown();
      return transport;
    }
    for (const [socket, entry] of incoming) {
      if (entry.from === previousRank && link === undefined) accept(socket, entry.held);
      else socket.close(1008, `not the previous rank (${previousRank})`);
    }
    const timeoutMs = connectOptions.connectTimeoutMs ?? WS_CONNECT_TIMEOUT_MS;
    // Both waits run from now, each bounded by timeoutMs; the incoming one is awaited once the outgoing
    // socket is ours (so a failure leaves nothing that close() would not find).
    const incomingLink = previousLinked(timeoutMs);
    incomingLink.catch(() => undefined);
    const url = `${nextAddress.replace(/\/+$/, "")}/ring?from=${rank}`;
    let next: WebSocket;
    try {
      next = await openWithRetry(url, timeoutMs, token, () => closing !== undefined);
    } catch (error) {
      linked?.reject(new Error("ws ring: gave up joining", { cause: error })); // clears its timer
      throw error;
    }
    if (closing !== undefined) {
      await closeSocket(next, 1000, "ring closed");
      throw new Error("ws ring: closed while connecting");
    }
    client = next;
    const nextRank = (rank + 1) % worldSize;
    next.on("error", (error) =>
      events.error(
        new Error(`ws ring: the link to rank ${nextRank} (${nextAddress}) failed: ${error.message}`),
      ),
    );
    next.on("close", (code, reason) => {
      if (closing === undefined)
        events.error(
          new Error(
            `ws ring: the link to rank ${nextRank} (${nextAddress}) closed (${code} ${reason.toString()})`,
          ),
        );
    });
    await incomingLink;
    return transport;
  };

  return { address, connect, close: shutdown };
}
