// The embedded broker against the real `nats` client (and raw TCP for what the client never sends), plus
// the real nats-server child process. "Everything delivered" is proven by PING/PONG round trips
// (`flush()`): the broker answers a PING only after writing every MSG routed before it.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { connect as tcpConnect, type Socket } from "node:net";
import { test } from "node:test";
import { connect, ErrorCode, headers, type Msg, type NatsConnection, type ConnectionOptions } from "nats";
import { ClientParser, type ClientOp } from "../../coordinator/nats/client-parser.js";
import {
  EmbeddedNatsServer,
  type EmbeddedNatsServerOptions,
} from "../../coordinator/nats/embedded-server.js";
import {
  NatsServerStartError,
  findNatsServer,
  startNatsServerProcess,
} from "../../coordinator/nats/server-process.js";
import { claimJob } from "../../coordinator/remote/lease.js";
import { requireNatsServer } from "../support/nats.js";

type Open = (options?: ConnectionOptions) => Promise<NatsConnection>;

/** Runs `body` against a fresh broker; closes every client it opened, then the broker. */
async function withBroker(
  options: EmbeddedNatsServerOptions,
  body: (open: Open, server: EmbeddedNatsServer) => Promise<void>,
): Promise<void> {
  const server = await EmbeddedNatsServer.start(options);
  const clients: NatsConnection[] = [];
  const open: Open = async (connectOptions) => {
    const nc = await connect({ servers: server.url, reconnect: false, ...connectOptions });
    clients.push(nc);
    return nc;
  };
  try {
    await body(open, server);
  } finally {
    await Promise.all(clients.filter((nc) => !nc.isClosed()).map((nc) => nc.close()));
    await server.close();
  }
}

/** Collects messages by callback; `got` resolves once `count` have arrived. */
function collect(nc: NatsConnection, subject: string, count: number, queue?: string) {
  const messages: Msg[] = [];
  let done: () => void = () => {};
  const got = new Promise<Msg[]>((resolve) => (done = () => resolve(messages)));
  const sub = nc.subscribe(subject, {
    queue,
    callback: (_error, msg) => {
      messages.push(msg);
      if (messages.length === count) done();
    },
  });
  if (count === 0) done();
  return { messages, got, sub };
}

/** A raw TCP client, for what the nats client never sends; `text` is everything the broker wrote to it. */
class RawClient {
  text = "";
  readonly closed: Promise<void>;
  private readonly waiters: { done: (text: string) => boolean; resolve: () => void }[] = [];

  private constructor(private readonly socket: Socket) {
    socket.setNoDelay(true);
    socket.on("data", (data: Buffer) => {
      this.text += data.toString("latin1");
      for (const waiter of this.waiters.filter((w) => w.done(this.text))) waiter.resolve();
    });
    socket.on("error", () => {}); // the broker may reset us mid-write after an -ERR
    this.closed = new Promise((resolve) => socket.once("close", () => resolve()));
  }

  static async connect(url: string): Promise<RawClient> {
    const { hostname, port } = new URL(url.replace("nats://", "tcp://"));
    const socket = tcpConnect(Number(port), hostname);
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    return new RawClient(socket);
  }

  /** Writes the chunks in order, each in its own event-loop turn so the broker reads them one by one. */
  async write(...chunks: (string | Buffer)[]): Promise<void> {
    for (const chunk of chunks) {
      if (this.socket.destroyed) return;
      await new Promise<void>((resolve) => this.socket.write(chunk, () => resolve()));
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Resolves once what arrived satisfies `done` or the broker closed the connection. */
  async waitFor(done: (text: string) => boolean): Promise<string> {
    if (!done(this.text))
      await Promise.race([this.closed, new Promise<void>((resolve) => this.waiters.push({ done, resolve }))]);
    return this.text;
  }

  close(): Promise<void> {
    this.socket.destroy();
    return this.closed;
  }
}

/** Writes `chunks` from a raw client and returns what the broker sent until it closed the connection. */
async function rawSession(url: string, ...chunks: (string | Buffer)[]): Promise<string> {
  const raw = await RawClient.connect(url);
  await raw.write(...chunks);
  await raw.closed;
  return raw.text;
}

const text = (msg: Msg) => Buffer.from(msg.data).toString("utf8");

test("embedded nats - the client sees the configured max_payload", async () => {
  await withBroker({ maxPayloadBytes: 123_456 }, async (open, server) => {
    assert.match(server.url, /^nats:\/\/127\.0\.0\.1:\d+$/);
    const nc = await open();
    assert.equal(nc.info?.max_payload, 123_456);
    assert.equal(nc.info?.headers, true);
  });
});

test("embedded nats - `*` matches one token, `>` the tail, literals exactly", async () => {
  await withBroker({}, async (open) => {
    const [subscriber, publisher] = [await open(), await open()];
    const star = collect(subscriber, "rank.*", 0);
    const tail = collect(subscriber, "rank.>", 0);
    const exact = collect(subscriber, "rank.0", 0);
    const middle = collect(subscriber, "rank.*.loss", 0);
    await subscriber.flush();
    for (const subject of ["rank.0", "rank.1.loss", "rank.1.grad.0", "rank", "other.0"])
      publisher.publish(subject);
    await publisher.flush();
    await subscriber.flush();
    const subjects = (c: { messages: Msg[] }) => c.messages.map((m) => m.subject);
    assert.deepEqual(subjects(star), ["rank.0"]);
    assert.deepEqual(subjects(tail), ["rank.0", "rank.1.loss", "rank.1.grad.0"]);
    assert.deepEqual(subjects(exact), ["rank.0"]);
    assert.deepEqual(subjects(middle), ["rank.1.loss"]);
  });
});

test("embedded nats - request gets the responder's reply", async () => {
  await withBroker({}, async (open) => {
    const [responder, requester] = [await open(), await open()];
    responder.subscribe("echo", { callback: (_error, msg) => msg.respond(`re: ${text(msg)}`) });
    await responder.flush();
    const reply = await requester.request("echo", "hello", { timeout: 5000 });
    assert.equal(text(reply), "re: hello");
    // The old-style request (its own inbox subscription, auto-unsubscribed after one reply) works too.
    const noMux = await requester.request("echo", "again", { timeout: 5000, noMux: true });
    assert.equal(text(noMux), "re: again");
  });
});

test("embedded nats - request to a subject nobody subscribes rejects with no responders, not a timeout", async () => {
  await withBroker({}, async (open) => {
    const nc = await open();
    await assert.rejects(nc.request("nobody.home", "hi", { timeout: 5000 }), {
      code: ErrorCode.NoResponders,
    });
  });
});

test("embedded nats - a closed client's subscriptions are removed", async () => {
  await withBroker({}, async (open) => {
    const [leaving, staying] = [await open(), await open()];
    leaving.subscribe("worker.step", { callback: (_error, msg) => msg.respond("here") });
    await leaving.flush();
    assert.equal(text(await staying.request("worker.step", "", { timeout: 5000 })), "here");
    await leaving.close();
    // The broker sees the FIN on its own schedule; a request routed to the dead client times out, so retry.
    for (let attempt = 1; ; attempt++) {
      const outcome = await staying.request("worker.step", "", { timeout: 250 }).then(
        () => "reply",
        (error: { code?: string }) => error.code,
      );
      if (outcome === ErrorCode.NoResponders) break;
      assert.ok(attempt < 20, `still routed to the closed client after ${attempt} tries (${outcome})`);
    }
  });
});

test("embedded nats - headers and reply subject round trip (HPUB to HMSG)", async () => {
  await withBroker({}, async (open) => {
    const [subscriber, publisher] = [await open(), await open()];
    const inbox = collect(subscriber, "with.headers", 1);
    await subscriber.flush();
    const sent = headers();
    sent.set("Step", "42");
    sent.append("Rank", "0");
    sent.append("Rank", "1");
    publisher.publish("with.headers", "body", { headers: sent, reply: "answer.here" });
    const [msg] = await inbox.got;
    assert.ok(msg !== undefined);
    assert.equal(text(msg), "body");
    assert.equal(msg.reply, "answer.here");
    assert.equal(msg.headers?.get("Step"), "42");
    assert.deepEqual(msg.headers?.values("Rank"), ["0", "1"]);
  });
});

test("embedded nats - a 900 KB binary payload arrives byte for byte", async () => {
  await withBroker({}, async (open) => {
    const [subscriber, publisher] = [await open(), await open()];
    const inbox = collect(subscriber, "weights", 2);
    await subscriber.flush();
    const payload = randomBytes(900 * 1024);
    const small = randomBytes(7);
    publisher.publish("weights", payload);
    publisher.publish("weights", small);
    const [big, after] = await inbox.got;
    assert.ok(Buffer.from(big?.data ?? []).equals(payload));
    assert.ok(Buffer.from(after?.data ?? []).equals(small));
  });
});

test("embedded nats - a payload over max_payload is refused and other clients are unaffected", async () => {
  await withBroker({ maxPayloadBytes: 64 * 1024 }, async (open, server) => {
    const [subscriber, publisher] = [await open(), await open()];
    const inbox = collect(subscriber, "grad", 1);
    await subscriber.flush();
    // The client enforces the advertised limit itself...
    assert.throws(() => publisher.publish("grad", new Uint8Array(64 * 1024 + 1)), {
      code: ErrorCode.MaxPayloadExceeded,
    });
    // ...and a client that ignores it is cut off by the broker, as nats-server does (rawSession returns on close).
    const refused = await rawSession(
      server.url,
      `CONNECT {"verbose":false}\r\nPUB grad ${64 * 1024 + 1}\r\n`,
      Buffer.alloc(64 * 1024 + 1),
    );
    assert.match(refused, /-ERR 'Maximum Payload Violation'\r\n$/);
    publisher.publish("grad", new Uint8Array(64 * 1024)); // exactly the limit is fine
    const [msg] = await inbox.got;
    assert.equal(msg?.data.length, 64 * 1024);
    assert.equal(publisher.isClosed(), false);
  });
});

test("embedded nats - 2000 messages from each of two connections arrive in publish order", async () => {
  await withBroker({}, async (open) => {
    const [subscriber, first, second] = [await open(), await open(), await open()];
    const count = 2000;
    const inbox = collect(subscriber, "stream.*", 2 * count);
    await subscriber.flush();
    for (let i = 0; i < count; i++) {
      first.publish("stream.a", String(i));
      second.publish("stream.b", String(i));
    }
    const messages = await inbox.got;
    for (const source of ["stream.a", "stream.b"]) {
      const sequence = messages.filter((m) => m.subject === source).map((m) => Number(text(m)));
      assert.deepEqual(
        sequence,
        Array.from({ length: count }, (_, i) => i),
      );
    }
  });
});

test("embedded nats - a queue group gets each message once, a plain subscriber gets all", async () => {
  await withBroker({}, async (open) => {
    const [a, b, publisher] = [await open(), await open(), await open()];
    const members = [
      collect(a, "jobs", 0, "workers"),
      collect(a, "jobs", 0, "workers"),
      collect(b, "jobs", 0, "workers"),
    ];
    const observer = collect(b, "jobs", 0);
    await a.flush();
    await b.flush();
    const count = 300;
    for (let i = 0; i < count; i++) publisher.publish("jobs", String(i));
    await publisher.flush();
    await a.flush();
    await b.flush();
    const delivered = members.flatMap((m) => m.messages.map(text)).sort((x, y) => Number(x) - Number(y));
    assert.deepEqual(
      delivered,
      Array.from({ length: count }, (_, i) => String(i)),
    );
    assert.ok(
      members.every((m) => m.messages.length > 0),
      "random choice spreads 300 messages over all 3 members",
    );
    assert.equal(observer.messages.length, count);
  });
});

test("embedded nats - unsubscribe stops delivery; max auto-unsubscribes", async () => {
  await withBroker({}, async (open) => {
    const [subscriber, publisher] = [await open(), await open()];
    const once = collect(subscriber, "tick", 0);
    const twice = collect(subscriber, "tick", 0);
    twice.sub.unsubscribe(2);
    await subscriber.flush();
    publisher.publish("tick", "1");
    await publisher.flush();
    await subscriber.flush();
    once.sub.unsubscribe();
    await subscriber.flush();
    publisher.publish("tick", "2");
    publisher.publish("tick", "3");
    await publisher.flush();
    await subscriber.flush();
    assert.deepEqual(once.messages.map(text), ["1"]);
    assert.deepEqual(twice.messages.map(text), ["1", "2"]);
    // No subscription left at the broker: a request there finds no responders.
    await assert.rejects(publisher.request("tick", "", { timeout: 5000 }), {
      code: ErrorCode.NoResponders,
    });
  });
});

test("embedded nats - noEcho connections do not receive their own messages", async () => {
  await withBroker({}, async (open) => {
    const [quiet, other] = [await open({ noEcho: true }), await open()];
    const own = collect(quiet, "chat", 0);
    const seen = collect(other, "chat", 2);
    await quiet.flush();
    await other.flush();
    quiet.publish("chat", "from quiet");
    other.publish("chat", "from other");
    await seen.got;
    await quiet.flush();
    assert.deepEqual(own.messages.map(text), ["from other"]);
  });
});

test("embedded nats - a garbled raw client gets -ERR and is closed; a real client keeps working", async () => {
  await withBroker({}, async (open, server) => {
    const nc = await open();
    const inbox = collect(nc, "still.alive", 1);
    await nc.flush();
    // Each of these returns only because the broker closed the connection.
    const junk = await rawSession(server.url, "CONNECT {}\r\nHELLO WORLD\r\nPING\r\n");
    assert.match(junk, /^INFO \{.*\} ?\r\n\+OK\r\n-ERR 'Unknown Protocol Operation'\r\n$/);
    const badSize = await rawSession(server.url, 'CONNECT {"verbose":false}\r\nPUB x 3\r\nabcdef\r\n');
    assert.match(badSize, /-ERR 'Unknown Protocol Operation'\r\n$/);
    const endless = await rawSession(server.url, Buffer.alloc(10_000, "A"));
    assert.match(endless, /-ERR 'maximum control line exceeded'\r\n$/);
    nc.publish("still.alive", "yes");
    assert.equal(text((await inbox.got)[0] as Msg), "yes");
  });
});

test("embedded nats - a subscriber that did not ask for headers gets MSG with the payload alone", async () => {
  await withBroker({}, async (open, server) => {
    const publisher = await open();
    const raw = await RawClient.connect(server.url);
    await raw.write('CONNECT {"verbose":false,"headers":false}\r\nSUB plain 7\r\nPING\r\n');
    await raw.waitFor((text) => text.endsWith("PONG\r\n"));
    const sent = headers();
    sent.set("Step", "1");
    publisher.publish("plain", "body", { headers: sent });
    await publisher.flush();
    await raw.write("PING\r\n");
    const received = await raw.waitFor((text) => text.split("PONG\r\n").length === 3);
    await raw.close();
    assert.ok(received.endsWith("PONG\r\nMSG plain 7 4\r\nbody\r\nPONG\r\n"), received);
  });
});

test("embedded nats - the wire stream may be split anywhere, down to single bytes", async () => {
  const stream = Buffer.from(
    'CONNECT {"verbose":false,"headers":true}\r\nSUB a.* 1\r\nPUB a.b 5\r\nhello\r\n' +
      "HPUB a.c reply.to 12 17\r\nNATS/1.0\r\n\r\nhello\r\nPING\r\n",
  );
  const expected = "MSG a.b 1 5\r\nhello\r\nHMSG a.c 1 reply.to 12 17\r\nNATS/1.0\r\n\r\nhello\r\nPONG\r\n";
  await withBroker({}, async (_open, server) => {
    const raw = await RawClient.connect(server.url);
    await raw.write(...[...stream].map((byte) => Buffer.from([byte])));
    const received = await raw.waitFor((text) => text.includes("PONG\r\n"));
    await raw.close();
    assert.equal(received.slice(received.indexOf("\r\n") + 2), expected);
  });
  // Every two-way split of the same stream parses to the same operations.
  const parse = (...chunks: Buffer[]) => {
    const parser = new ClientParser(1024);
    return chunks.flatMap((chunk) => [...parser.push(chunk)]);
  };
  const whole: ClientOp[] = parse(stream);
  assert.equal(whole.length, 5);
  for (let at = 0; at <= stream.length; at++) {
    assert.deepEqual(parse(stream.subarray(0, at), stream.subarray(at)), whole, `split at ${at}`);
  }
});

test(
  "nats-server process - starts on a free port, serves the nats client, stops on SIGTERM",
  { timeout: 30_000 },
  async (t) => {
    const binary = requireNatsServer(t);
    if (binary === undefined) return;
    assert.match(findNatsServer() ?? "", /nats-server$/);
    const server = await startNatsServerProcess(binary);
    try {
      const nc = await connect({ servers: server.url, reconnect: false });
      const inbox = collect(nc, "ping.me", 1);
      nc.publish("ping.me", "pong");
      assert.equal(text((await inbox.got)[0] as Msg), "pong");
      await nc.close();
    } finally {
      await server.stop();
    }
    await assert.rejects(connect({ servers: server.url, reconnect: false, timeout: 2000 }));
  },
);

test("nats-server process - a binary that exits at once fails with its stderr, not a timeout", async () => {
  // node rejects nats-server's `-a 127.0.0.1` with "bad option" on stderr and exits.
  await assert.rejects(startNatsServerProcess(process.execPath), (error: unknown) => {
    assert.ok(error instanceof NatsServerStartError);
    assert.match(error.message, /exited with code \d+ before accepting connections/);
    assert.match(error.stderr, /bad option/);
    return true;
  });
});

test("embedded bus - the coordinator lease works on it: a second claim for a job is refused, another job is free", async () => {
  const server = await EmbeddedNatsServer.start();
  const [a, b] = await Promise.all([connect({ servers: server.url }), connect({ servers: server.url })]);
  try {
    const lease = await claimJob(a, "leased");
    await assert.rejects(claimJob(b, "leased"), /job "leased" already has a coordinator/);
    (await claimJob(b, "other")).release();
    lease.release();
    (await claimJob(b, "leased")).release(); // free again once released
  } finally {
    await Promise.all([a.close(), b.close()]);
    await server.close();
  }
});
