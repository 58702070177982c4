// The wire protocol's schemas (zod): every message a process receives is checked against these at the
// edge, before anything acts on it: types, ranges and sizes, and the whole job spec a worker is given.
// Parsing returns a new object holding only the known fields, so nothing else of a hostile message (say,
// a "__proto__" or "constructor" key) reaches the code. The TypeScript types in protocol.ts are the
// reference; `satisfies` below fails the build if a schema and its type drift apart.
import { z } from "zod";
import { DATA_PLANES, WIRE_DTYPES } from "./data-plane.js";
import type { CoordinatorMessage, JobSpec, LeaseClaim, WorkerMessage } from "./protocol.js";

/** Ranks, steps, epochs, ids: non-negative safe integers. */
const count = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);
/** At most this many ranks in a job (ring positions, peers). */
export const MAX_RANKS = 65_536;
const rank = z
  .number()
  .int()
  .min(0)
  .max(MAX_RANKS - 1);
/** Names, hosts, reasons, paths: bounded, so a message cannot make a process hold megabytes of text. */
const text = z.string().max(4096);
const shortText = z.string().max(256);
/** A loss or a norm: any number, NaN and infinities included (a diverged step still reports). */
const anyNumber = z.custom<number>((value) => typeof value === "number", "a number");
/** A duration: finite and non-negative. */
const seconds = z.number().min(0);
/** Example indices of one request: at most a million. */
const indices = z.array(count).max(1_000_000);
const lossSums = z.tuple([anyNumber, anyNumber]);

const stepResult = z.object({
  lr: anyNumber,
  trainLoss: anyNumber,
  trainOutputLoss: anyNumber,
  tokens: anyNumber,
  lossTokens: anyNumber,
  examples: anyNumber,
  gradNorm: anyNumber,
});
const phases = z.object({ data: seconds, forward_backward: seconds, allreduce: seconds, optimizer: seconds });

export const WORKER_MESSAGE = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("join"),
    protocol: count,
    name: shortText,
    device: shortText,
    host: shortText,
    pid: count,
    nonce: shortText,
  }),
  z.object({
    type: z.literal("ready"),
    rank,
    dataFingerprint: shortText,
    dataPlaneAddress: text,
    backend: shortText,
    device: shortText,
    adapter: text,
  }),
  z.object({
    type: z.literal("stepDone"),
    rank,
    step: count,
    result: stepResult,
    phases,
    checksum: anyNumber.nullable(),
    memory: z.object({ tensors: count, bytes: count }),
  }),
  z.object({
    type: z.literal("evalDone"),
    rank,
    requestId: count,
    heldOut: lossSums,
    train: lossSums,
    seconds,
  }),
  z.object({ type: z.literal("checkpointDone"), rank, step: count, seconds }),
  z.object({
    type: z.literal("aborted"),
    rank,
    completedSteps: count,
    lastStep: z.object({ step: count, result: stepResult, phases }).optional(),
  }),
  z.object({ type: z.literal("heartbeat"), rank }),
  z.object({ type: z.literal("ringReady"), rank, epoch: count }),
  z.object({ type: z.literal("regrouped"), rank, epoch: count, dataPlaneAddress: text }),
  z.object({ type: z.literal("adopted"), rank, completedSteps: count }),
  z.object({ type: z.literal("stepFailed"), rank, step: count, message: text }),
  z.object({ type: z.literal("failed"), rank, message: text }),
  z.object({ type: z.literal("leaving"), rank, reason: text }),
]) satisfies z.ZodType<WorkerMessage>;

/** A train flag's value as yargs gives it: a scalar, or a short list of them. */
const flagValue = z.union([
  z.string().max(4096),
  anyNumber,
  z.boolean(),
  z.null(),
  z.array(z.union([z.string().max(4096), anyNumber, z.boolean()])).max(1024),
]);

export const JOB_SPEC = z.object({
  job: shortText,
  flags: z.record(z.string().max(64), flagValue).refine((flags) => Object.keys(flags).length <= 256, {
    message: "too many flags",
  }),
  totalSteps: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER),
  dataPlane: z.enum(DATA_PLANES),
  allreduceDtype: z.enum(WIRE_DTYPES).optional(),
  checksumEverySteps: count,
  // Periods and deadlines: from 10 ms (a faster heartbeat would flood the bus) to a day.
  heartbeatMs: z.number().int().min(10).max(86_400_000),
  coordinatorTimeoutMs: z.number().int().min(10).max(86_400_000),
  ringMessageTimeoutMs: z.number().int().min(10).max(86_400_000),
  ringToken: z
    .string()
    .regex(/^[0-9a-f]{16,128}$/)
    .optional(),
}) satisfies z.ZodType<JobSpec>;

export const COORDINATOR_MESSAGE = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("welcome"),
    rank,
    worldSize: z.number().int().min(1).max(MAX_RANKS),
    job: JOB_SPEC,
  }),
  z.object({ type: z.literal("reject"), reason: text }),
  z.object({
    type: z.literal("start"),
    epoch: count,
    position: rank,
    worldSize: z.number().int().min(1).max(MAX_RANKS),
    peers: z.array(text).max(MAX_RANKS),
  }),
  z.object({ type: z.literal("adopt"), dir: text, step: count }),
  z.object({ type: z.literal("regroup"), epoch: count }),
  z.object({ type: z.literal("step"), step: count, examples: indices, checksum: z.boolean() }),
  z.object({ type: z.literal("eval"), requestId: count, heldOut: indices, train: indices }),
  z.object({
    type: z.literal("checkpoint"),
    dir: text,
    seed: count,
    keep: z.number().int().min(1).max(1000),
  }),
  z.object({ type: z.literal("abort"), reason: text }),
  z.object({ type: z.literal("shutdown"), reason: text, failed: z.boolean() }),
  z.object({ type: z.literal("alive") }),
]) satisfies z.ZodType<CoordinatorMessage>;

export const LEASE_CLAIM = z.object({
  type: z.literal("lease"),
  host: shortText,
  pid: count,
  startedAtMs: count,
  id: shortText,
}) satisfies z.ZodType<LeaseClaim>;
