// Anyone who can publish on the bus: 10,000 random and mutated messages (raw bytes, random msgpack, valid
// messages broken one field at a time, prototype-pollution keys, huge declared lengths, paths outside the
// run directory) on every subject of a running job. Each is dropped at the edge with a log line and a
// count, and the run finishes with an unbroken run's losses and weights.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Packr } from "msgpackr";
import { connect } from "nats";
import { mulberry32 } from "../../shared/random.js";
import { PROTOCOL_VERSION, jobSubjects } from "../../shared/protocol.js";
import { runCli, startCli } from "../support/cli.js";
import { sharedNatsServer } from "../support/nats.js";
import { assertSameRun } from "../support/same-run.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("hostile");
const data = writeSyntheticData(dir, 40, 4);
const modelConfig = writeMicroModelConfig(dir);
const nats = sharedNatsServer();
const raw = new Packr({ useRecords: false, moreTypes: false });

function trainFlags(out: string, steps: number): string[] {
  return [
    ...["--data", data, "--model", modelConfig, "--steps", String(steps), "--batch-size", "4"],
    ...["--seed", "1", "--eval-fraction", "0", "--backend", "wasm", "--out", out],
  ];
}

type Random = () => number;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;

/** A random msgpack-able value, nested up to `depth`. */
function randomValue(random: Random, depth = 2): unknown {
  const kinds = ["int", "float", "string", "bool", "nil", "bytes", ...(depth > 0 ? ["list", "map"] : [])];
  switch (pick(random, kinds)) {
    case "int":
      return Math.floor((random() - 0.5) * 2 ** (1 + random() * 60));
    case "float":
      return pick(random, [NaN, Infinity, -Infinity, -0, random() * 1e308, random()]);
    case "string":
      return "x".repeat(Math.floor(random() * 64)) + pick(random, ["", "__proto__", "\u0000", "☃"]);
    case "bool":
      return random() < 0.5;
    case "nil":
      return null;
    case "bytes":
      return Uint8Array.from({ length: Math.floor(random() * 64) }, () => Math.floor(random() * 256));
    case "list":
      return Array.from({ length: Math.floor(random() * 5) }, () => randomValue(random, depth - 1));
    default:
      return Object.fromEntries(
        Array.from({ length: Math.floor(random() * 5) }, () => [
          pick(random, ["type", "rank", "step", "job", "dir", "__proto__", "constructor", "x"]),
          randomValue(random, depth - 1),
        ]),
      );
  }
}

/** Valid messages of each direction: broken one field at a time below. */
const WORKER_MESSAGES: Record<string, unknown>[] = [
  { type: "heartbeat", rank: 0 },
  {
    type: "ready",
    rank: 0,
    dataFingerprint: "abcd1234",
    dataPlaneAddress: "",
    ...{ backend: "wasm", device: "cpu", adapter: "" },
  },
  { type: "stepFailed", rank: 1, step: 3, message: "lost" },
  { type: "aborted", rank: 0, completedSteps: 2 },
  { type: "join", protocol: PROTOCOL_VERSION, name: "x", device: "cpu", host: "h", pid: 1, nonce: "n" },
];
const COORDINATOR_MESSAGES: Record<string, unknown>[] = [
  { type: "step", step: 0, examples: [0, 1], checksum: false },
  { type: "shutdown", reason: "hostile", failed: true },
  { type: "abort", reason: "hostile" },
  { type: "regroup", epoch: 9 },
  { type: "eval", requestId: 5, heldOut: [0], train: [1] },
];

/** A valid message with one field made invalid: a wrong kind, out of range, missing, or far too long. */
function brokenMessage(
  random: Random,
  messages: readonly Record<string, unknown>[],
): Record<string, unknown> {
  const message = { ...pick(random, messages) };
  const field = pick(
    random,
    Object.keys(message).filter((key) => key !== "type"),
  );
  const breakage = pick(random, ["missing", "negative", "string", "map", "huge", "fraction", "long"]);
  if (breakage === "missing") delete message[field];
  else if (breakage === "negative") message[field] = -1 - Math.floor(random() * 1000);
  else if (breakage === "string") message[field] = { a: "not the right kind" };
  else if (breakage === "map") message[field] = { __proto__: { polluted: true }, constructor: 1 };
  else if (breakage === "huge") message[field] = 2 ** 60;
  else if (breakage === "fraction") message[field] = 0.5;
  else message[field] = typeof message[field] === "string" ? "x".repeat(5000) : [[["deep"]]];
  // Keep it invalid whatever the field was: a string field given -1 is wrong anyway; a number field given a
  // map is wrong anyway. A string field given a long string, and optional-looking fields, get a bad type.
  if (breakage === "long" && typeof message[field] !== "string") message["type"] = 42;
  return message;
}

/** One hostile message for `target`: never a valid command (those would be obeyed, by design). */
function hostileMessage(random: Random, target: "coordinator" | "rank" | "join" | "ring", outside: string) {
  const kind = pick(random, [
    "bytes",
    "value",
    "broken",
    "lengths",
    "pollution",
    ...(target === "rank" ? ["path"] : []),
  ]);
  switch (kind) {
    case "bytes":
      return Uint8Array.from({ length: Math.floor(random() * 300) }, () => Math.floor(random() * 256));
    case "value": {
      // A random value, made sure not to be a known message: its type is not a string.
      const value = randomValue(random);
      return raw.pack(
        typeof value === "object" && value !== null && !Array.isArray(value) ? { ...value, type: 7 } : value,
      );
    }
    case "lengths":
      // Headers declaring a 4 GiB string, bin, array and map, with no body.
      return Uint8Array.from(
        pick(random, [
          [0xdb, 0xff, 0xff, 0xff, 0xff],
          [0xc6, 0xff, 0xff, 0xff, 0xff],
          [0xdd, 0xff, 0xff, 0xff, 0xff],
          [0xdf, 0xff, 0xff, 0xff, 0xff],
        ]),
      );
    case "pollution":
      return raw.pack(
        JSON.parse(
          '{"type":"__proto__","rank":0,"__proto__":{"polluted":true},"constructor":{"prototype":{"x":1}}}',
        ),
      );
    case "path":
      // Valid in every field, but names a directory outside the run: refused.
      return raw.pack(
        pick(random, [
          { type: "checkpoint", dir: outside, seed: 1, keep: 1 },
          { type: "adopt", dir: outside, step: 0 },
        ]),
      );
    default:
      if (target === "ring") return raw.pack({ tag: -1, offset: 0.5, data: "not floats" });
      return raw.pack(brokenMessage(random, target === "rank" ? COORDINATOR_MESSAGES : WORKER_MESSAGES));
  }
}

test(
  "hostile messages - 10,000 random and broken messages on every subject of a running job are dropped, counted, and change nothing",
  { timeout: 240_000 },
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const steps = 60;
    const unbroken = join(dir, "unbroken");
    const reference = await runCli(["train", ...trainFlags(unbroken, steps)]);
    assert.equal(reference.status, 0, reference.stderr.slice(-2000));

    const job = "hostile";
    const out = join(dir, "run");
    const common = ["--nats", server.url, "--job", job];
    const coordinator = startCli([
      ...[
        "coordinator",
        ...common,
        "--workers",
        "2",
        "--heartbeat-ms",
        "200",
        "--worker-timeout-ms",
        "30000",
        // The ring's messages on NATS are among the subjects attacked (the ws plane's frames have their own test).
        "--data-plane",
        "nats",
      ],
      ...trainFlags(out, steps),
    ]);
    const workers = [0, 1].map((i) => startCli(["worker", ...common, "--name", `hostile-w${i}`]));
    t.after(() => [coordinator, ...workers].forEach((p) => p.child.kill("SIGKILL")));
    await coordinator.waitFor(/step 3\/60/, 60_000);

    const nc = await connect({ servers: server.url });
    t.after(() => nc.close());
    const subjects = jobSubjects(job);
    const random = mulberry32(8);
    const sent = { coordinator: 0, join: 0, rank0: 0, rank1: 0, ring: 0 };
    for (let i = 0; i < 10_000; i++) {
      const target = pick(random, ["coordinator", "join", "rank", "rank", "ring"] as const);
      const rank = random() < 0.5 ? 0 : 1;
      const subject =
        target === "coordinator"
          ? subjects.coordinator
          : target === "join"
            ? subjects.join
            : target === "rank"
              ? subjects.rank(rank)
              : `${subjects.ring(rank)}.0`; // the ring of epoch 0
      nc.publish(subject, hostileMessage(random, target, "/etc/imtrain-hostile"));
      if (target === "rank") sent[rank === 0 ? "rank0" : "rank1"]++;
      else sent[target]++;
      if (i % 500 === 499) {
        await nc.flush();
        await sleep(20);
      }
    }
    await nc.flush();
    t.diagnostic(`published: ${JSON.stringify(sent)}`);

    assert.equal(await coordinator.exit, 0, coordinator.stderr.slice(-3000));
    assert.deepEqual(await Promise.all(workers.map((w) => w.exit)), [0, 0]);
    await assertSameRun(unbroken, out, steps);
    // Every message to the coordinator and its join subject was dropped with a line of its own.
    const lines = (text: string, pattern: RegExp) =>
      text.split("\n").filter((line) => pattern.test(line)).length;
    assert.equal(lines(coordinator.stderr, /ignored a bad message: protocol error/), sent.coordinator);
    assert.equal(lines(coordinator.stderr, /refused a join: /), sent.join);
    const ringDrops = workers.map((w) => lines(w.stderr, /dropped a ring message \(malformed\)/));
    assert.equal(ringDrops[0]! + ringDrops[1]!, sent.ring);
    for (const [i, worker] of workers.entries()) {
      const refused = lines(
        worker.stderr,
        /ignored a bad command: protocol error|ignored a (checkpoint|adopt) naming \/etc/,
      );
      // Ranks go by join order, not by name.
      const rank = /: rank (\d)\/2, backend/.exec(worker.stderr)?.[1];
      assert.equal(refused, rank === "0" ? sent.rank0 : sent.rank1, `hostile-w${i} (rank ${rank})`);
    }
    assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
  },
);
