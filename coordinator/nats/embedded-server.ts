// An embedded NATS broker, so `imtrain launch` works on a machine without nats-server: it runs inside the
// launch process and speaks enough of the NATS client protocol (protocol 1, with headers) for the real
// `nats` client in other processes to connect over TCP.
//
// Implements: INFO, CONNECT (verbose, echo, headers, no_responders), PING/PONG, SUB with `*`/`>` wildcards
// and queue groups (one random member per group), UNSUB with auto-unsubscribe after max messages,
// PUB/HPUB delivered as MSG/HMSG (headers stripped for clients that did not ask for them), the 503
// no-responders HMSG for requests nobody is subscribed to, +OK in verbose mode, and nats-server's fatal
// -ERRs: 'Maximum Payload Violation', 'Unknown Protocol Operation', 'maximum control line exceeded'.
// Not implemented: clustering, gateways, leaf nodes, auth (credentials are ignored), accounts, JetStream,
// TLS, WebSocket, monitoring, server-initiated PINGs (stale clients are found by the OS, not by us).

import { randomBytes } from "node:crypto";
import { createServer, type AddressInfo, type Server, type Socket } from "node:net";
import { ClientParser, ClientProtocolViolation, type ClientOp } from "./client-parser.js";
import {
  SubscriptionIndex,
  isValidPublishSubject,
  isValidSubscribeSubject,
  subjectMatches,
  type Subscription,
} from "./subscriptions.js";

export interface EmbeddedNatsServerOptions {
  /** Interface to listen on; default 127.0.0.1 (loopback only: there is no auth). */
  host?: string;
  /** TCP port; default 0 picks a free one. */
  port?: number;
  /** Largest PUB/HPUB (headers + payload) accepted, advertised as max_payload; default 1 MiB as nats-server. */
  maxPayloadBytes?: number;
}

/** nats-server's default max_pending: a subscriber this far behind is a slow consumer and is dropped. */
const MAX_PENDING_BYTES = 64 * 1024 * 1024;
/** The version we claim in INFO; the client only derives optional features from it. */
const ADVERTISED_VERSION = "2.10.0";
const CRLF = Buffer.from("\r\n");
const NO_RESPONDERS_HEADER = "NATS/1.0 503\r\n\r\n";

interface ConnectionFlags {
  verbose: boolean;
  echo: boolean;
  headers: boolean;
  noResponders: boolean;
}

type Pub = Extract<ClientOp, { kind: "pub" }>;

/** One client TCP connection: its parser, its subscriptions by sid and its CONNECT flags. */
class Connection {
  readonly subscriptions = new Map<string, Subscription<Connection>>();
  // nats-server's defaults when CONNECT leaves a field out (the nats client always sends them).
  readonly flags: ConnectionFlags = { verbose: true, echo: true, headers: false, noResponders: false };
  closed = false;
  private corked = false;

  constructor(
    readonly socket: Socket,
    readonly parser: ClientParser,
  ) {}

  /** Queues bytes; writes in one tick leave as one writev. Never blocks: node buffers past the high-water mark. */
  send(...parts: (string | Buffer)[]): void {
    if (this.closed) return;
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(() => {
        this.corked = false;
        this.socket.uncork();
      });
    }
    for (const part of parts)
      this.socket.write(typeof part === "string" ? Buffer.from(part, "latin1") : part);
    if (this.socket.writableLength > MAX_PENDING_BYTES) {
      // Slow consumer: drop it rather than hold unbounded memory for a reader that cannot keep up.
      this.closed = true;
      this.socket.destroy();
    }
  }

  /** Sends `-ERR` and closes, as nats-server does on a protocol violation; the socket flushes first. */
  fail(reply: string): void {
    this.send(`-ERR '${reply}'\r\n`);
    this.closed = true;
    this.socket.end();
  }
}

export class EmbeddedNatsServer {
  private readonly connections = new Set<Connection>();
  private readonly index = new SubscriptionIndex<Connection>();
  private readonly serverId = `NEMBED${randomBytes(12).toString("hex").toUpperCase()}`;
  private nextClientId = 1;
  private closing: Promise<void> | undefined;

  /** nats://HOST:PORT for `connect({ servers })`. */
  readonly url: string;

  private constructor(
    private readonly server: Server,
    private readonly host: string,
    private readonly port: number,
    private readonly maxPayloadBytes: number,
  ) {
    const urlHost =
      host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
    this.url = `nats://${urlHost}:${port}`;
    server.on("connection", (socket) => this.accept(socket));
    // Accept failures (e.g. EMFILE) drop that one connection; the listener stays up.
    server.on("error", () => {});
  }

  static async start(options: EmbeddedNatsServerOptions = {}): Promise<EmbeddedNatsServer> {
    const host = options.host ?? "127.0.0.1";
    const port = options.port ?? 0;
    const maxPayloadBytes = options.maxPayloadBytes ?? 1024 * 1024;
    if (!Number.isInteger(port) || port < 0 || port > 65535)
      throw new RangeError(`port ${port} is not 0..65535`);
    if (!Number.isInteger(maxPayloadBytes) || maxPayloadBytes < 1 || maxPayloadBytes > MAX_PENDING_BYTES)
      throw new RangeError(`maxPayloadBytes ${maxPayloadBytes} is not 1..${MAX_PENDING_BYTES} (64 MiB)`);
    const server = createServer({ noDelay: true });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    return new EmbeddedNatsServer(server, host, (server.address() as AddressInfo).port, maxPayloadBytes);
  }

  /** Stops listening and drops every client; resolves once all sockets are closed. Idempotent. */
  close(): Promise<void> {
    this.closing ??= new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const connection of this.connections) {
        connection.closed = true;
        connection.socket.destroy();
      }
    });
    return this.closing;
  }

  private accept(socket: Socket): void {
    const connection = new Connection(socket, new ClientParser(this.maxPayloadBytes));
    this.connections.add(connection);
    socket.on("data", (chunk: Buffer) => this.receive(connection, chunk));
    // 'close' always follows 'error'; the error itself needs no handling beyond dropping the client.
    socket.on("error", () => {});
    // A client's FIN means it is gone (nats clients never half-close): stop routing to it right away.
    socket.on("end", () => this.removeSubscriptions(connection));
    socket.on("close", () => {
      this.removeSubscriptions(connection);
      this.connections.delete(connection);
    });
    const info = {
      server_id: this.serverId,
      server_name: "imtrain-embedded",
      version: ADVERTISED_VERSION,
      proto: 1,
      host: this.host,
      port: this.port,
      headers: true,
      max_payload: this.maxPayloadBytes,
      client_id: this.nextClientId++,
      client_ip: socket.remoteAddress,
    };
    connection.send(`INFO ${JSON.stringify(info)}\r\n`);
  }

  /** At once when a client fails, so nothing more is routed to it while its socket flushes the -ERR. */
  private removeSubscriptions(connection: Connection): void {
    connection.closed = true;
    for (const subscription of connection.subscriptions.values()) this.index.remove(subscription);
    connection.subscriptions.clear();
  }

  private receive(connection: Connection, chunk: Buffer): void {
    if (connection.closed) return;
    try {
      for (const op of connection.parser.push(chunk)) {
        this.handle(connection, op);
        if (connection.closed) return;
      }
    } catch (error) {
      if (!(error instanceof ClientProtocolViolation)) throw error;
      connection.fail(error.reply);
      this.removeSubscriptions(connection);
    }
  }

  private handle(connection: Connection, op: ClientOp): void {
    switch (op.kind) {
      case "connect":
        for (const key of ["verbose", "echo", "headers", "noResponders"] as const) {
          const value = op.fields[key];
          if (value !== undefined) connection.flags[key] = value;
        }
        return this.ok(connection);
      case "ping":
        return connection.send("PONG\r\n");
      case "pong":
        return;
      case "sub":
        return this.subscribe(connection, op.subject, op.queue, op.sid);
      case "unsub": {
        const subscription = connection.subscriptions.get(op.sid);
        if (subscription !== undefined) {
          if (op.max !== undefined && op.max > subscription.delivered) subscription.max = op.max;
          else this.unsubscribe(subscription);
        }
        return this.ok(connection);
      }
      case "pub":
        return this.publish(connection, op);
    }
  }

  private ok(connection: Connection): void {
    if (connection.flags.verbose) connection.send("+OK\r\n");
  }

  private subscribe(owner: Connection, subject: string, queue: string | undefined, sid: string): void {
    if (!isValidSubscribeSubject(subject)) return owner.send("-ERR 'Invalid Subject'\r\n");
    const previous = owner.subscriptions.get(sid);
    if (previous !== undefined) this.unsubscribe(previous);
    const subscription: Subscription<Connection> = {
      owner,
      sid,
      subject,
      tokens: subject.split("."),
      queue,
      delivered: 0,
      max: undefined,
    };
    owner.subscriptions.set(sid, subscription);
    this.index.add(subscription);
    this.ok(owner);
  }

  private unsubscribe(subscription: Subscription<Connection>): void {
    subscription.owner.subscriptions.delete(subscription.sid);
    this.index.remove(subscription);
  }

  private publish(publisher: Connection, pub: Pub): void {
    if (pub.headerBytes !== undefined && !publisher.flags.headers) {
      // nats-server refuses HPUB from a client that did not declare headers in CONNECT.
      publisher.fail("Unknown Protocol Operation");
      return this.removeSubscriptions(publisher);
    }
    if (!isValidPublishSubject(pub.subject)) return publisher.send("-ERR 'Invalid Publish Subject'\r\n");
    const targets = this.index.route(pub.subject, (s) => publisher.flags.echo || s.owner !== publisher);
    for (const subscription of targets) this.deliver(subscription, pub);
    if (targets.length === 0 && pub.reply !== undefined) this.replyNoResponders(publisher, pub.reply);
    this.ok(publisher);
  }

  private deliver(subscription: Subscription<Connection>, pub: Pub): void {
    const { owner, sid } = subscription;
    const reply = pub.reply === undefined ? "" : ` ${pub.reply}`;
    if (pub.headerBytes !== undefined && owner.flags.headers) {
      const total = pub.message.length;
      owner.send(`HMSG ${pub.subject} ${sid}${reply} ${pub.headerBytes} ${total}\r\n`, pub.message, CRLF);
    } else {
      const payload = pub.message.subarray(pub.headerBytes ?? 0);
      owner.send(`MSG ${pub.subject} ${sid}${reply} ${payload.length}\r\n`, payload, CRLF);
    }
    subscription.delivered++;
    if (subscription.max !== undefined && subscription.delivered >= subscription.max)
      this.unsubscribe(subscription);
  }

  /** Tells a requester at once that nobody listens, on its own subscription that matches the reply subject. */
  private replyNoResponders(publisher: Connection, reply: string): void {
    if (!publisher.flags.headers || !publisher.flags.noResponders) return;
    const replyTokens = reply.split(".");
    for (const subscription of publisher.subscriptions.values()) {
      if (!subjectMatches(subscription.tokens, replyTokens)) continue;
      const size = NO_RESPONDERS_HEADER.length;
      return publisher.send(
        `HMSG ${reply} ${subscription.sid} ${size} ${size}\r\n${NO_RESPONDERS_HEADER}\r\n`,
      );
    }
  }
}
