// The wire protocol at the edge: every message type survives encode → decode unchanged and is plain msgpack
// any implementation can read; every decoder turns bad bytes into a ProtocolError that names the subject.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Packr, Unpackr } from "msgpackr";
import { UserError } from "../../shared/errors.js";
import {
  MAX_CONTROL_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  ProtocolError,
  decodeCoordinatorMessage,
  decodeRingChunk,
  decodeWorkerMessage,
  encodeMessage,
  jobSubjects,
  type CoordinatorMessage,
  type RingChunk,
  type WorkerMessage,
} from "../../shared/protocol.js";

const SUBJECT = jobSubjects("unit").coordinator;

type Samples<M extends { type: string }> = { [K in M["type"]]: Extract<M, { type: K }>[] };

// Every type of each union, at least once: the mapped types make a missing type a compile error.
const WORKER_SAMPLES: Samples<WorkerMessage> = {
  join: [
    {
      type: "join",
      protocol: PROTOCOL_VERSION,
      name: "w0",
      device: "gpu:1",
      host: "node-a",
      pid: 4242,
      nonce: "3f2b8c1e-5a4d-4e7f-9b0a-1c2d3e4f5a6b",
    },
  ],
  ready: [
    {
      type: "ready",
      rank: 1,
      dataFingerprint: "0a1b2c3d",
      dataPlaneAddress: "ws://10.0.0.2:4100",
      backend: "webgpu",
      device: "gpu:1",
      adapter: 'adapter "NVIDIA H100" (vulkan)',
    },
  ],
  stepDone: [
    {
      type: "stepDone",
      rank: 0,
      step: 3,
      result: {
        lr: 1e-3,
        trainLoss: 2.5,
        trainOutputLoss: 3.25,
        tokens: 512,
        lossTokens: 128,
        examples: 4,
        gradNorm: 0.75,
      },
      phases: { data: 0.001, forward_backward: 0.25, allreduce: 0.125, optimizer: 0.01 },
      checksum: 0x1234abcd,
      memory: { tensors: 120, bytes: 4_000_000 },
    },
    {
      type: "stepDone",
      rank: 1,
      step: 0,
      result: { lr: 0, trainLoss: 0, trainOutputLoss: 0, tokens: 0, lossTokens: 0, examples: 0, gradNorm: 0 },
      phases: { data: 0, forward_backward: 0, allreduce: 0, optimizer: 0 },
      checksum: null,
      memory: { tensors: 0, bytes: 0 },
    },
  ],
  evalDone: [
    { type: "evalDone", rank: 1, requestId: 2, heldOut: [12.5, 10], train: [8.25, 10], seconds: 0.5 },
  ],
  checkpointDone: [{ type: "checkpointDone", rank: 0, step: 7, seconds: 1.5 }],
  aborted: [{ type: "aborted", rank: 1, completedSteps: 6 }],
  heartbeat: [{ type: "heartbeat", rank: 0 }],
  ringReady: [{ type: "ringReady", rank: 1, epoch: 2 }],
  regrouped: [{ type: "regrouped", rank: 2, epoch: 1, dataPlaneAddress: "ws://10.0.0.3:4100" }],
  adopted: [{ type: "adopted", rank: 3, completedSteps: 12 }],
  stepFailed: [{ type: "stepFailed", rank: 0, step: 7, message: "no ring message from rank 2 for 5000 ms" }],
  failed: [{ type: "failed", rank: 1, message: "out of memory: ünïcødé ✓" }],
  leaving: [{ type: "leaving", rank: 0, reason: "SIGTERM" }],
};

const COORDINATOR_SAMPLES: Samples<CoordinatorMessage> = {
  welcome: [
    {
      type: "welcome",
      rank: 1,
      worldSize: 2,
      job: {
        job: "run1",
        flags: { data: "train.jsonl", batchSize: 4, lr: 0.001, dropEmptyOutputs: false },
        totalSteps: 40,
        dataPlane: "nats",
        checksumEverySteps: 10,
        heartbeatMs: 1000,
        coordinatorTimeoutMs: 10000,
        ringMessageTimeoutMs: 120000,
      },
    },
  ],
  reject: [{ type: "reject", reason: "job j already has its 2 workers" }],
  start: [
    {
      type: "start",
      epoch: 0,
      position: 1,
      worldSize: 2,
      peers: ["ws://10.0.0.1:4100", "ws://10.0.0.2:4100"],
    },
    { type: "start", epoch: 3, position: 0, worldSize: 2, peers: ["", ""] },
  ],
  step: [
    { type: "step", step: 0, examples: [3, 1, 4], checksum: true },
    { type: "step", step: 9, examples: [], checksum: false },
  ],
  eval: [{ type: "eval", requestId: 1, heldOut: [0, 1], train: [] }],
  checkpoint: [{ type: "checkpoint", dir: "/runs/x/checkpoint", seed: 1, keep: 2 }],
  abort: [{ type: "abort", reason: "a worker was lost" }],
  regroup: [{ type: "regroup", epoch: 1 }],
  adopt: [{ type: "adopt", dir: "/shared/runs/job/handoff", step: 12 }],
  shutdown: [
    { type: "shutdown", reason: "job finished", failed: false },
    { type: "shutdown", reason: "job failed: worker w1 (rank 1) went silent", failed: true },
  ],
  alive: [{ type: "alive" }],
};

const workerSamples = Object.values(WORKER_SAMPLES).flat() as WorkerMessage[];
const coordinatorSamples = Object.values(COORDINATOR_SAMPLES).flat() as CoordinatorMessage[];

type Decoder = (bytes: Uint8Array, subject: string) => unknown;
const DECODERS: readonly [string, Decoder][] = [
  ["decodeWorkerMessage", decodeWorkerMessage],
  ["decodeCoordinatorMessage", decodeCoordinatorMessage],
  ["decodeRingChunk", decodeRingChunk],
];

// Bypasses encodeMessage's types, to put on the wire what a buggy or hostile peer would.
const raw = new Packr({ useRecords: false, moreTypes: false });
const bytesOf = (value: unknown): Uint8Array => raw.pack(value);

/** Asserts `decode` throws a ProtocolError on SUBJECT whose message matches `reason`. */
function assertRejects(decode: Decoder, bytes: Uint8Array, reason: RegExp, what: string): void {
  assert.throws(
    () => decode(bytes, SUBJECT),
    (error: unknown) => {
      assert.ok(error instanceof ProtocolError, `${what}: threw ${String(error)}, not a ProtocolError`);
      assert.ok(error instanceof UserError, `${what}: a ProtocolError is a UserError (one CLI line)`);
      assert.equal(error.subject, SUBJECT, what);
      assert.ok(error.message.startsWith(`protocol error on ${SUBJECT}: `), `${what}: ${error.message}`);
      assert.match(error.message, reason, what);
      return true;
    },
    `${what}: decoded without an error`,
  );
}

/** A value decoded with mapsAsObjects off: every msgpack map is a Map; a plain object here was a record. */
function fromPlainMsgpack(value: unknown, path = "message"): unknown {
  if (value instanceof Map) {
    const object: Record<string, unknown> = {};
    for (const [key, entry] of value) {
      assert.equal(typeof key, "string", `${path}: map key ${String(key)} is not a string`);
      object[key as string] = fromPlainMsgpack(entry, `${path}.${String(key)}`);
    }
    return object;
  }
  if (Array.isArray(value)) return value.map((entry, i) => fromPlainMsgpack(entry, `${path}[${i}]`));
  if (value instanceof Uint8Array) return value;
  assert.ok(typeof value !== "object" || value === null, `${path} is not a plain msgpack map (a record?)`);
  return value;
}

/** fixmap, map16 or map32: the first byte of a msgpack map. */
const isMapHeader = (byte: number | undefined) =>
  byte !== undefined && ((byte & 0xf0) === 0x80 || byte === 0xde || byte === 0xdf);

test("protocol - every worker message type survives encode → decodeWorkerMessage unchanged", () => {
  for (const message of workerSamples) {
    assert.deepEqual(decodeWorkerMessage(encodeMessage(message), SUBJECT), message, message.type);
  }
});

test("protocol - every coordinator message type survives encode → decodeCoordinatorMessage unchanged", () => {
  for (const message of coordinatorSamples) {
    assert.deepEqual(decodeCoordinatorMessage(encodeMessage(message), SUBJECT), message, message.type);
  }
});

test("protocol - a ring chunk of a float32 view survives encode → decodeRingChunk with the same floats", () => {
  const floats = new Float32Array([1.5, -2, 3.25, 1e-7, -0, Number.MAX_VALUE / 2]);
  // A view into the middle of the buffer, as the ring sends: byteOffset ≠ 0.
  const data = new Uint8Array(floats.buffer, 4, 16);
  const chunk: RingChunk = { tag: 7, offset: 1, data };
  const decoded = decodeRingChunk(encodeMessage(chunk), SUBJECT);
  assert.equal(decoded.tag, 7);
  assert.equal(decoded.offset, 1);
  assert.ok(decoded.data instanceof Uint8Array);
  assert.deepEqual([...decoded.data], [...data]);
  const copy = new Float32Array(decoded.data.length / 4);
  new Uint8Array(copy.buffer).set(decoded.data);
  assert.deepEqual([...copy], [...floats.subarray(1, 5)]);
  const empty = decodeRingChunk(encodeMessage({ tag: 0, offset: 0, data: new Uint8Array(0) }), SUBJECT);
  assert.equal(empty.data.length, 0);
});

test("protocol - encoded messages are plain msgpack maps a fresh decoder without records reads key for key", () => {
  const plain = new Unpackr({ useRecords: false, mapsAsObjects: false });
  const ring: RingChunk = { tag: 1, offset: 2, data: new Uint8Array([1, 2, 3, 4]) };
  for (const message of [...workerSamples, ...coordinatorSamples, ring]) {
    const what = "type" in message ? message.type : "ring chunk";
    const bytes = encodeMessage(message);
    assert.ok(isMapHeader(bytes[0]), `${what}: first byte 0x${bytes[0]?.toString(16)} is not a map header`);
    const decoded = plain.unpack(bytes) as unknown;
    assert.ok(decoded instanceof Map, `${what}: not a msgpack map`);
    assert.deepEqual([...decoded.keys()].sort(), Object.keys(message).sort(), what);
    const object = fromPlainMsgpack(decoded, what) as Record<string, unknown>;
    if ("type" in message) assert.deepEqual(object, message, what);
    else assert.deepEqual([...(object["data"] as Uint8Array)], [1, 2, 3, 4]);
  }
});

test("protocol - each decoder rejects bytes that are not msgpack, naming the subject", () => {
  const notMsgpack: [string, Uint8Array][] = [
    ["text", new TextEncoder().encode("not msgpack at all")],
    ["a truncated map", new Uint8Array([0x82, 0xa4, 0x74])],
    ["no bytes", new Uint8Array(0)],
    ["a map followed by trailing bytes", new Uint8Array([...bytesOf({ type: "heartbeat", rank: 0 }), 0x01])],
  ];
  for (const [name, decode] of DECODERS) {
    for (const [what, bytes] of notMsgpack) assertRejects(decode, bytes, /not msgpack/, `${name}: ${what}`);
    // 0xc1 is the one byte msgpack never uses; msgpackr decodes it to a marker object, still rejected.
    assertRejects(decode, new Uint8Array([0xc1]), /./, `${name}: the reserved byte 0xc1`);
  }
});

test("protocol - each decoder rejects a msgpack array, scalar or nil where a map belongs", () => {
  const notMaps: [string, unknown][] = [
    ["an array", [{ type: "heartbeat", rank: 0 }]],
    ["an empty array", []],
    ["an integer", 42],
    ["a float", 1.5],
    ["a string", "heartbeat"],
    ["a boolean", true],
    ["nil", null],
  ];
  for (const [name, decode] of DECODERS) {
    for (const [what, value] of notMaps)
      assertRejects(decode, bytesOf(value), /message is not a map/, `${name}: ${what}`);
  }
});

test("protocol - each message decoder rejects an unknown, missing or non-string type", () => {
  const decoders: [string, Decoder][] = [
    ["decodeWorkerMessage", decodeWorkerMessage],
    ["decodeCoordinatorMessage", decodeCoordinatorMessage],
  ];
  const unknown: [string, Record<string, unknown>][] = [
    ["an unknown type", { type: "explode", rank: 0 }],
    ["an empty type", { type: "", rank: 0 }],
    ["a type in another case", { type: "Heartbeat", rank: 0 }],
    ["no type", { rank: 0 }],
    ["a numeric type", { type: 7, rank: 0 }],
    ["a null type", { type: null }],
    ["a list as type", { type: ["heartbeat"], rank: 0 }],
    ["an empty map", {}],
  ];
  for (const [name, decode] of decoders) {
    for (const [what, value] of unknown)
      assertRejects(decode, bytesOf(value), /unknown message type/, `${name}: ${what}`);
  }
  // Each direction's types are unknown to the other direction's decoder.
  for (const message of coordinatorSamples)
    assertRejects(decodeWorkerMessage, encodeMessage(message), /unknown message type/, message.type);
  for (const message of workerSamples)
    assertRejects(decodeCoordinatorMessage, encodeMessage(message), /unknown message type/, message.type);
});

test("protocol - a type named after an Object.prototype member (toString, constructor, __proto__) is unknown", () => {
  for (const type of ["toString", "constructor", "__proto__", "hasOwnProperty", "valueOf"]) {
    assertRejects(decodeWorkerMessage, bytesOf({ type, rank: 0 }), /unknown message type/, `worker ${type}`);
    assertRejects(decodeCoordinatorMessage, bytesOf({ type }), /unknown message type/, `coordinator ${type}`);
  }
});

/** A value of the wrong kind for a field: a map where a scalar or list belongs, a string where a map does. */
function wrongValueFor(value: unknown): unknown {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? "a string" : { a: 1 };
}

/** The one field nil is valid for: a step that was not asked for a checksum. */
const NULLABLE = new Set(["stepDone.checksum"]);

test("protocol - each decoder rejects every required field missing or of the wrong type, naming the field", () => {
  const cases: [Decoder, readonly Record<string, unknown>[]][] = [
    [decodeWorkerMessage, workerSamples as unknown as Record<string, unknown>[]],
    [decodeCoordinatorMessage, coordinatorSamples as unknown as Record<string, unknown>[]],
  ];
  for (const [decode, samples] of cases) {
    for (const sample of samples) {
      for (const field of Object.keys(sample).filter((key) => key !== "type")) {
        const type = String(sample["type"]);
        const reason = new RegExp(
          `^protocol error on \\S+: ${type}: field "${field}" is missing or malformed$`,
        );
        const { [field]: _dropped, ...missing } = sample;
        assertRejects(decode, bytesOf(missing), reason, `${type} without ${field}`);
        const wrong = { ...sample, [field]: wrongValueFor(sample[field]) };
        assertRejects(decode, bytesOf(wrong), reason, `${type} with a wrong-typed ${field}`);
        if (!NULLABLE.has(`${type}.${field}`))
          assertRejects(decode, bytesOf({ ...sample, [field]: null }), reason, `${type} with ${field}: nil`);
      }
    }
  }
});

test("protocol - decoders reject values of the right kind but out of range: negative, fractional, too long", () => {
  const step = COORDINATOR_SAMPLES.step[0];
  const stepDone = WORKER_SAMPLES.stepDone[0];
  const join = WORKER_SAMPLES.join[0];
  assert.ok(step && stepDone && join);
  const { gradNorm: _gradNorm, ...withoutGradNorm } = stepDone.result;
  const field = (name: string) => new RegExp(`field "${name}" is missing or malformed`);
  const worker: [string, Record<string, unknown>, RegExp][] = [
    ["a negative rank", { type: "heartbeat", rank: -1 }, field("rank")],
    ["a fractional rank", { type: "heartbeat", rank: 0.5 }, field("rank")],
    ["a rank as a string", { type: "heartbeat", rank: "0" }, field("rank")],
    ["a rank past 2^53", { type: "heartbeat", rank: 2 ** 53 }, field("rank")],
    ["a non-integer step", { ...stepDone, step: 1.5 }, field("step")],
    ["a negative step", { ...stepDone, step: -1 }, field("step")],
    ["a checksum as a string", { ...stepDone, checksum: "1234abcd" }, field("checksum")],
    ["a result missing gradNorm", { ...stepDone, result: withoutGradNorm }, field("result")],
    [
      "a result with a string loss",
      { ...stepDone, result: { ...stepDone.result, trainLoss: "2.5" } },
      field("result"),
    ],
    ["a result as a list", { ...stepDone, result: [1, 2, 3, 4, 5, 6, 7] }, field("result")],
    ["a 5000-char failure message", { type: "failed", rank: 0, message: "x".repeat(5000) }, field("message")],
    ["a 5000-char worker name", { ...join, name: "w".repeat(5000) }, field("name")],
    ["a negative protocol", { ...join, protocol: -1 }, field("protocol")],
    ["a fractional pid", { ...join, pid: 1.5 }, field("pid")],
    ["loss sums of three numbers", { ...WORKER_SAMPLES.evalDone[0], heldOut: [1, 2, 3] }, field("heldOut")],
    ["loss sums with a string", { ...WORKER_SAMPLES.evalDone[0], train: [1, "2"] }, field("train")],
    [
      "a negative phase time",
      { ...stepDone, phases: { ...stepDone.phases, allreduce: -1 } },
      field("phases"),
    ],
    [
      "an infinite phase time",
      { ...stepDone, phases: { ...stepDone.phases, data: Infinity } },
      field("phases"),
    ],
    [
      "phases without optimizer",
      { ...stepDone, phases: { data: 0, forward_backward: 0, allreduce: 0 } },
      field("phases"),
    ],
    ["negative eval seconds", { ...WORKER_SAMPLES.evalDone[0], seconds: -0.5 }, field("seconds")],
    ["NaN checkpoint seconds", { ...WORKER_SAMPLES.checkpointDone[0], seconds: NaN }, field("seconds")],
  ];
  for (const [what, value, reason] of worker)
    assertRejects(decodeWorkerMessage, bytesOf(value), reason, what);

  const coordinator: [string, Record<string, unknown>, RegExp][] = [
    ["examples with a string", { ...step, examples: [1, "2", 3] }, field("examples")],
    ["examples with a negative index", { ...step, examples: [1, -2] }, field("examples")],
    ["examples with a fraction", { ...step, examples: [1.5] }, field("examples")],
    ["examples as a map", { ...step, examples: { 0: 1 } }, field("examples")],
    ["a non-integer step", { ...step, step: 0.25 }, field("step")],
    ["a checksum flag as 1", { ...step, checksum: 1 }, field("checksum")],
    [
      "peers with a number",
      { type: "start", epoch: 0, position: 0, worldSize: 2, peers: ["ws://a:1", 2] },
      field("peers"),
    ],
    [
      "a peer of 5000 chars",
      { type: "start", epoch: 0, position: 0, worldSize: 1, peers: ["p".repeat(5000)] },
      field("peers"),
    ],
    ["a negative epoch", { type: "regroup", epoch: -1 }, field("epoch")],
    ["a 5000-char reject reason", { type: "reject", reason: "r".repeat(5000) }, field("reason")],
    ["a negative seed", { type: "checkpoint", dir: "/tmp/c", seed: -1 }, field("seed")],
    ["a job as a list", { ...COORDINATOR_SAMPLES.welcome[0], job: [] }, field("job")],
    ["eval ids with a string", { type: "eval", requestId: 1, heldOut: ["0"], train: [] }, field("heldOut")],
  ];
  for (const [what, value, reason] of coordinator)
    assertRejects(decodeCoordinatorMessage, bytesOf(value), reason, what);
});

test("protocol - decodeRingChunk rejects data that is not whole float32s, and a bad tag or offset", () => {
  const reason = /ring chunk needs integer tag and offset and whole 4-byte floats/;
  const data = new Uint8Array(8);
  const bad: [string, Record<string, unknown>][] = [
    ...[1, 2, 3, 5, 7].map((n): [string, Record<string, unknown>] => [
      `${n} data bytes`,
      { tag: 0, offset: 0, data: new Uint8Array(n) },
    ]),
    ["data as a string", { tag: 0, offset: 0, data: "abcd" }],
    ["data as a list of numbers", { tag: 0, offset: 0, data: [0, 0, 0, 0] }],
    ["no data", { tag: 0, offset: 0 }],
    ["a negative tag", { tag: -1, offset: 0, data }],
    ["a fractional offset", { tag: 0, offset: 0.5, data }],
    ["no tag", { offset: 0, data }],
    ["an offset as a string", { tag: 0, offset: "0", data }],
  ];
  for (const [what, value] of bad) assertRejects(decodeRingChunk, bytesOf(value), reason, what);
});

test("protocol - the whole job spec in a welcome is checked: a missing or out-of-range field is named", () => {
  const welcome = COORDINATOR_SAMPLES.welcome[0];
  assert.ok(welcome);
  const { heartbeatMs: _heartbeatMs, ...withoutHeartbeat } = welcome.job;
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ["no heartbeatMs", withoutHeartbeat, /field "job" is missing or malformed \(job\.heartbeatMs: /],
    ["a 1 ms heartbeat", { ...welcome.job, heartbeatMs: 1 }, /\(job\.heartbeatMs: /],
    ["a fractional timeout", { ...welcome.job, coordinatorTimeoutMs: 1.5 }, /\(job\.coordinatorTimeoutMs: /],
    ["no steps", { ...welcome.job, totalSteps: 0 }, /\(job\.totalSteps: /],
    ["an unknown data plane", { ...welcome.job, dataPlane: "carrier-pigeon" }, /\(job\.dataPlane: /],
    ["no job name", { ...welcome.job, job: undefined }, /\(job\.job: /],
    ["a flag holding a map", { ...welcome.job, flags: { lr: { $gt: 0 } } }, /\(job\.flags\.lr: /],
  ];
  for (const [what, job, reason] of cases)
    assertRejects(decodeCoordinatorMessage, bytesOf({ ...welcome, job }), reason, what);
});

test("protocol - unknown keys, __proto__ and constructor included, are dropped and Object.prototype is untouched", () => {
  const hostile = JSON.parse(
    '{"type":"heartbeat","rank":1,"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"extra":1}',
  ) as Record<string, unknown>;
  const decoded = decodeWorkerMessage(bytesOf(hostile), SUBJECT);
  assert.deepEqual(Object.keys(decoded).sort(), ["rank", "type"]);
  assert.equal(Object.getPrototypeOf(decoded), Object.prototype);
  assert.equal(({} as Record<string, unknown>)["polluted"], undefined);
});

test("protocol - a control message larger than the limit is rejected as oversized before it is decoded", () => {
  const huge = bytesOf({ type: "failed", rank: 0, message: "x".repeat(MAX_CONTROL_MESSAGE_BYTES) });
  assert.throws(
    () => decodeWorkerMessage(huge, SUBJECT),
    (error: unknown) =>
      error instanceof ProtocolError && error.kind === "oversized" && /larger than/.test(error.message),
  );
  // Anything that fails its schema is counted as malformed.
  assert.throws(
    () => decodeWorkerMessage(bytesOf({ type: "heartbeat", rank: -1 }), SUBJECT),
    (error: unknown) => error instanceof ProtocolError && error.kind === "malformed",
  );
});
