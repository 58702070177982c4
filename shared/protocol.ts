// The wire protocol between coordinator and workers, in one place: subjects, message types (discriminated
// unions on `type`), the version, msgpack framing, and validation of every incoming message at the edge.
//
//   worker ──join (request)──────────────► coordinator      reply: welcome | reject
//   worker ──ready/ringReady/regrouped/stepDone/stepFailed/evalDone/checkpointDone/aborted/heartbeat/failed/
//            leaving──► coordinator subject
//   coordinator ──start/regroup/step/eval/checkpoint/abort/shutdown/alive──► rank subject
//   rank r ──ring chunks──► rank (r+1) mod N                (NATS ring subject, or a WebSocket)
import { Packr } from "msgpackr";
import type { ZodType } from "zod";
import { UserError } from "./errors.js";
import { COORDINATOR_MESSAGE, LEASE_CLAIM, WORKER_MESSAGE } from "./protocol-schemas.js";
import type { RankPhaseSeconds } from "./metrics/records.js";
import type { DataPlane, WireDtype } from "./data-plane.js";

// 2: stepDone carries the rank's phase seconds; evalDone and checkpointDone their seconds.
// 3: join carries a nonce (a retried join gets the same rank); shutdown says whether the job failed.
// 4: the job spec carries the ring's message deadline apart from the coordinator's silence timeout.
// 6: a replacement joins a running job: adopt {dir} (take the live ranks' state), answered by adopted.
// 7: adopt carries the step of the state it hands over (adopting is idempotent by step); it also brings
//    a rank that missed a step's last ring message up to the ranks that applied it.
// 8: ready says the rank's backend, device and adapter; the job spec carries the job's name, and every message is checked against a schema (protocol-schemas.ts).
// 5: rings have epochs: start {epoch, position, worldSize, peers} is acknowledged with ringReady; regroup
//    prepares a new epoch's ring; a step that failed on a healthy rank is stepFailed, not failed.
export const PROTOCOL_VERSION = 8;

/** A job name is one NATS subject token: no ".", no wildcards ("*", ">"), no spaces. */
export const JOB_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** Subjects of one job; several jobs can share a NATS server under different names. */
export function jobSubjects(job: string) {
  const prefix = `imtrain.${job}`;
  return {
    join: `${prefix}.join`,
    coordinator: `${prefix}.coordinator`,
    rank: (rank: number) => `${prefix}.rank.${rank}`,
    ring: (rank: number) => `${prefix}.ring.${rank}`,
    /** The job's coordinator answers here with its LeaseClaim: one coordinator per job. */
    lease: `${prefix}.lease`,
  };
}

export { DATA_PLANES, WIRE_DTYPES, type DataPlane, type WireDtype } from "./data-plane.js";

/** What every worker needs to build the identical job: the raw train flags it compiles itself. */
export interface JobSpec {
  /** The job's name (--job): a worker checks it is the job it asked to join. */
  readonly job: string;
  readonly flags: Record<string, unknown>;
  readonly totalSteps: number;
  readonly dataPlane: DataPlane;
  /** --allreduce-dtype; absent means fp32. */
  readonly allreduceDtype?: WireDtype | undefined;
  /** Compare parameter checksums across ranks every K steps (0 = only at the end). */
  readonly checksumEverySteps: number;
  readonly heartbeatMs: number;
  /** A worker that hears nothing from the coordinator for this long stops (it would wait forever). */
  readonly coordinatorTimeoutMs: number;
  /** The longest a ring message may be waited for: the longest step's compute (--worker-timeout-ms). */
  readonly ringMessageTimeoutMs: number;
  /** What ranks present to each other on the ws data plane (made per job; travels only over NATS). */
  readonly ringToken?: string | undefined;
}

/** Totals of one step after the all-reduce: identical on every rank. */
export interface StepResult {
  readonly lr: number;
  readonly trainLoss: number;
  readonly trainOutputLoss: number;
  readonly tokens: number;
  readonly lossTokens: number;
  readonly examples: number;
  readonly gradNorm: number;
}

/** Σ output-token loss and the output-token count of a set of examples. */
export type LossSums = readonly [lossSum: number, tokens: number];

export type WorkerMessage =
  | {
      type: "join";
      protocol: number;
      name: string;
      device: string;
      host: string;
      pid: number;
      /** Unique to this worker process: a join it retries (its reply was lost) gets the same rank. */
      nonce: string;
    }
  /** Loaded the job: its data's fingerprint, its ws address, and what computes (backend, device, adapter). */
  | {
      type: "ready";
      rank: number;
      dataFingerprint: string;
      dataPlaneAddress: string;
      backend: string;
      device: string;
      /** The GPU adapter (webgpu), or "" for none. */
      adapter: string;
    }
  | {
      type: "stepDone";
      rank: number;
      step: number;
      result: StepResult;
      phases: RankPhaseSeconds;
      checksum: number | null;
      /** tfjs's live tensors and their bytes on this rank after the step. */
      memory: { tensors: number; bytes: number };
    }
  | { type: "evalDone"; rank: number; requestId: number; heldOut: LossSums; train: LossSums; seconds: number }
  | { type: "checkpointDone"; rank: number; step: number; seconds: number }
  | {
      type: "aborted";
      rank: number;
      completedSteps: number;
      /**
       * The last step this rank applied, as its stepDone said: if every stepDone of a step was lost (NATS
       * restarting while the ws ring finished the step), recovery records the step from these.
       */
      lastStep?: { step: number; result: StepResult; phases: RankPhaseSeconds } | undefined;
    }
  | { type: "heartbeat"; rank: number }
  /** The ring of `epoch` is up on this rank: steps may be sent. */
  | { type: "ringReady"; rank: number; epoch: number }
  /** Ready to join the ring of `epoch`; `dataPlaneAddress` is this rank's new ws address (ws plane). */
  | { type: "regrouped"; rank: number; epoch: number; dataPlaneAddress: string }
  /** This rank took the state in `adopt`'s directory: it has completed `completedSteps`. */
  | { type: "adopted"; rank: number; completedSteps: number }
  /** The step failed on this rank because of the ring (a peer lost, a message lost): not this rank's fault. */
  | { type: "stepFailed"; rank: number; step: number; message: string }
  | { type: "failed"; rank: number; message: string }
  | { type: "leaving"; rank: number; reason: string };

export type CoordinatorMessage =
  | { type: "welcome"; rank: number; worldSize: number; job: JobSpec }
  | { type: "reject"; reason: string }
  /** Form the ring of `epoch`: this rank at `position` of `worldSize`; peers[p] is position p's address. */
  | { type: "start"; epoch: number; position: number; worldSize: number; peers: string[] }
  /** Load the weights and optimizer state a live rank saved in `dir` after `step` steps (a replacement,
   * or a rank one step behind the others). */
  | { type: "adopt"; dir: string; step: number }
  /** Drop the current ring and prepare one for `epoch` (after a lost rank). */
  | { type: "regroup"; epoch: number }
  | { type: "step"; step: number; examples: number[]; checksum: boolean }
  | { type: "eval"; requestId: number; heldOut: number[]; train: number[] }
  /** Save into `dir`, keeping `keep` checkpoints there (the run's --keep-checkpoints; 1 for a handoff). */
  | { type: "checkpoint"; dir: string; seed: number; keep: number }
  | { type: "abort"; reason: string }
  /** `failed`: the job failed, so the worker exits non-zero. */
  | { type: "shutdown"; reason: string; failed: boolean }
  /** Sent every heartbeat period, so workers notice a coordinator that is gone. */
  | { type: "alive" };

/** Who holds a job's coordinator lease: the earliest start wins (ties: the smaller id). */
export interface LeaseClaim {
  readonly type: "lease";
  readonly host: string;
  readonly pid: number;
  readonly startedAtMs: number;
  readonly id: string;
}

/** One piece of a ring all-reduce: raw float32 bytes of buffer[offset, offset + n) for exchange `tag`. */
export interface RingChunk {
  readonly tag: number;
  readonly offset: number;
  readonly data: Uint8Array;
}

export class ProtocolError extends UserError {
  override readonly name = "ProtocolError";
  constructor(
    readonly subject: string,
    reason: string,
    /** How a receiver counts the dropped message. */
    readonly kind: "malformed" | "oversized" = "malformed",
  ) {
    super(`protocol error on ${subject}: ${reason}`);
  }
}

// Plain msgpack: no records extension, so any msgpack implementation can read the wire.
const packr = new Packr({ useRecords: false, moreTypes: false });

export function encodeMessage(
  message: WorkerMessage | CoordinatorMessage | RingChunk | LeaseClaim,
): Uint8Array {
  return packr.pack(message);
}

function decodeObject(bytes: Uint8Array, subject: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = packr.unpack(bytes);
  } catch (error) {
    throw new ProtocolError(subject, `not msgpack (${(error as Error).message})`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ProtocolError(subject, "message is not a map");
  }
  return value as Record<string, unknown>;
}

/** The largest control message accepted (NATS's default max_payload); a larger one is dropped unread. */
export const MAX_CONTROL_MESSAGE_BYTES = 1024 * 1024;

/** Decodes and checks one message against `schema` (protocol-schemas.ts), naming the first bad field. */
function validate<T>(
  schema: ZodType<T>,
  knownTypes: ReadonlySet<string>,
  bytes: Uint8Array,
  subject: string,
): T {
  if (bytes.length > MAX_CONTROL_MESSAGE_BYTES)
    throw new ProtocolError(
      subject,
      `message of ${bytes.length} bytes is larger than ${MAX_CONTROL_MESSAGE_BYTES}`,
      "oversized",
    );
  const message = decodeObject(bytes, subject);
  const type = message["type"];
  // Own keys only: "toString" or "__proto__" must not find an inherited member.
  if (typeof type !== "string" || !knownTypes.has(type))
    throw new ProtocolError(subject, `unknown message type ${JSON.stringify(type)}`);
  const parsed = schema.safeParse(message);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const [field, ...inner] = issue?.path ?? [];
  const detail = inner.length > 0 ? ` (${[field, ...inner].join(".")}: ${issue?.message ?? ""})` : "";
  throw new ProtocolError(subject, `${type}: field "${String(field)}" is missing or malformed${detail}`);
}

const WORKER_TYPES = new Set(WORKER_MESSAGE.options.map((option) => option.shape.type.value));
const COORDINATOR_TYPES = new Set(COORDINATOR_MESSAGE.options.map((option) => option.shape.type.value));

export function decodeWorkerMessage(bytes: Uint8Array, subject: string): WorkerMessage {
  return validate(WORKER_MESSAGE, WORKER_TYPES, bytes, subject);
}

export function decodeCoordinatorMessage(bytes: Uint8Array, subject: string): CoordinatorMessage {
  return validate(COORDINATOR_MESSAGE, COORDINATOR_TYPES, bytes, subject);
}

export function decodeLeaseClaim(bytes: Uint8Array, subject: string): LeaseClaim {
  return validate(LEASE_CLAIM, new Set(["lease"]), bytes, subject);
}

const isIndex = (value: unknown) => Number.isSafeInteger(value) && (value as number) >= 0;

/**
 * A ring chunk's envelope where its floats travel as a frame of their own (ws): the chunk's msgpack map
 * with the byte count in place of the data.
 */
export function encodeRingEnvelope(chunk: RingChunk): Uint8Array {
  return packr.pack({ tag: chunk.tag, offset: chunk.offset, bytes: chunk.data.length });
}

/** A ring chunk from its envelope and payload frames: checked as decodeRingChunk checks a whole one. */
export function decodeRingFrames(
  envelope: Uint8Array,
  payload: Uint8Array,
  subject: string,
  bytesPerFloat = 4,
): RingChunk {
  const fields = decodeObject(envelope, subject);
  const chunk = ringChunkOf(fields["tag"], fields["offset"], payload, subject, bytesPerFloat);
  if (fields["bytes"] !== payload.length)
    throw new ProtocolError(
      subject,
      `ring chunk envelope says ${String(fields["bytes"])} bytes, its payload frame has ${payload.length}`,
    );
  return chunk;
}

/** Checks a ring chunk's fields, as decoded: integer tag and offset, data of whole floats. */
function ringChunkOf(
  tag: unknown,
  offset: unknown,
  data: unknown,
  subject: string,
  bytesPerFloat: number,
): RingChunk {
  if (!isIndex(tag) || !isIndex(offset) || !(data instanceof Uint8Array) || data.length % bytesPerFloat !== 0)
    throw new ProtocolError(
      subject,
      `ring chunk needs integer tag and offset and whole ${bytesPerFloat}-byte floats`,
    );
  return { tag: tag as number, offset: offset as number, data };
}

/**
 * A ring chunk whose data is whole floats of `bytesPerFloat` bytes (4, or 2 for a bf16/fp16 wire). Checked
 * by hand, not by zod: it is the hot path, and three fields.
 */
export function decodeRingChunk(bytes: Uint8Array, subject: string, bytesPerFloat = 4): RingChunk {
  const chunk = decodeObject(bytes, subject);
  return ringChunkOf(chunk["tag"], chunk["offset"], chunk["data"], subject, bytesPerFloat);
}
