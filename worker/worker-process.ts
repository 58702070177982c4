// `imtrain worker`: one rank per process (per GPU, or per CPU core). Its lifecycle is an explicit state
// machine, logged at every transition:
//
//   connecting → joining → loading → ready → training → stopped
//                   ↑                             ↘ draining (SIGTERM: finish the step, tell the coordinator)
//                   └── rejoining ←── the coordinator went silent (killed, restarted with --resume)
//
// A worker outlives its coordinator: when the coordinator goes silent it drops its ring and replica and asks
// for a coordinator again for up to --join-timeout-ms, so a coordinator restarted with --resume takes its
// workers back (they load the checkpoint it resumes from). Nobody answering in time fails the worker.
//
// Commands arrive on the rank's subject and run one at a time, except `abort`, which cancels the step in
// flight (a peer was lost) so this rank can still save the last completed step.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { isAbsolute, relative, resolve } from "node:path";
import type { NatsConnection, Subscription } from "nats";
import * as tf from "@tensorflow/tfjs-core";
import { parseDevice } from "../shared/backend/device.js";
import { checkWebGpuLimits, longestInput } from "../shared/backend/limits.js";
import { describeAdapter } from "../shared/backend/adapter.js";
import { describeBackend, selectBackend } from "../shared/backend/select.js";
import type { Log } from "../shared/data/load.js";
import { UserError } from "../shared/errors.js";
import { connectToNats } from "../shared/nats/connect.js";
import type { NatsConnectionSettings } from "../shared/nats/settings.js";
import { compileTrainOptions, type TrainFlags, type TrainOptions } from "../shared/options.js";
import {
  PROTOCOL_VERSION,
  ProtocolError,
  decodeCoordinatorMessage,
  encodeMessage,
  jobSubjects,
  type CoordinatorMessage,
  type JobSpec,
  type StepResult,
  type WorkerMessage,
} from "../shared/protocol.js";
import { prepareRun } from "../shared/train/prepare.js";
import { STEP_TOTALS } from "../shared/train/step-buffer.js";
import type { RankPhaseSeconds } from "../shared/metrics/records.js";
import type { MetricsOptions } from "../shared/metrics/options.js";
import { resolvePeakFlops } from "../shared/metrics/peak-flops.js";
import { RankMetrics } from "../shared/metrics/rank-metrics.js";
import type { ServedMetrics } from "../shared/metrics/serve.js";
import { countingTransport } from "./allreduce/counting-transport.js";
import { createNatsRingTransport } from "./allreduce/nats-transport.js";
import { RingAllReduce } from "./allreduce/ring.js";
import type { RingTransport } from "./allreduce/transport.js";
import { listenWsRing, type WsRingListener } from "./allreduce/ws-transport.js";
import { RingError } from "./allreduce/errors.js";
import { startHeartbeats, type Heartbeats } from "./heartbeats.js";
import { Rank } from "./rank.js";
import { trainStep } from "./train-step.js";

export type WorkerState =
  | "connecting"
  | "joining"
  | "loading"
  | "ready"
  | "training"
  | "regrouping"
  | "draining"
  | "rejoining"
  | "stopped";

export interface WorkerOptions {
  /** The server, credentials and TLS (compiled from the NATS flags). */
  readonly nats: NatsConnectionSettings;
  readonly name: string;
  /** cpu, gpu:K or gpu:software (see shared/backend/device.ts). */
  readonly device: string;
  readonly job: string;
  /** How long to keep asking for a coordinator before giving up: at start, and after losing one. */
  readonly joinTimeoutMs: number;
  /** Address other workers reach this one on, for the ws data plane. */
  readonly advertiseHost: string;
  readonly metrics: MetricsOptions;
}

const JOIN_RETRY_MS = 500;

export class Worker {
  private state: WorkerState = "connecting";
  private nc: NatsConnection | undefined;
  private rank = -1;
  private transport: RingTransport | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private heartbeats: Heartbeats | undefined;
  /** When the coordinator was last heard from, and when the last command finished (a long synchronous
   * step blocks this event loop, so messages that arrived meanwhile are read only after it). */
  private lastHeardMs = Date.now();
  private natsDown = false;
  /** This rank's model, optimizer and data; replaced when this rank adopts the job's state. */
  private trainer!: Rank;
  private trainOptions!: TrainOptions;
  /** The epochs of the ring this rank has up, and of the last regroup it answered (repeats are idempotent). */
  private ringEpoch = -1;
  private regroupedEpoch = -1;
  /** A ring failure reported while the bus may have been down: said again on reconnecting, until a new ring. */
  private pendingStepFailure: WorkerMessage | undefined;
  private idleSinceMs = Date.now();
  private failure: UserError | undefined;
  private stopping = false;
  /** SIGTERM before this worker has a job: stop asking for one. */
  private drainRequested = false;
  /** This coordinator session's subscription to the rank's subject. */
  private commandSubscription: Subscription | undefined;
  /** Ends the current coordinator session: the coordinator went silent. */
  private coordinatorLost: (() => void) | undefined;
  private commands: Promise<void> = Promise.resolve();
  private stopped!: () => void;
  private readonly finished = new Promise<void>((resolve) => (this.stopped = resolve));

  private readonly rankMetrics: RankMetrics | undefined;
  /** Identifies this join, so a retried request (its reply lost) gets the same rank; new for a rejoin. */
  private nonce = randomUUID();
  /** A command has come from this session's coordinator (until then `ready` is repeated). */
  private commanded = false;

  /** `served`: this process's metrics endpoint, started before joining so /healthz answers from the start. */
  constructor(
    private readonly options: WorkerOptions,
    private readonly log: Log,
    private readonly served: ServedMetrics | undefined = undefined,
  ) {
    this.rankMetrics = served && new RankMetrics(served.registry);
  }

  private enter(state: WorkerState): void {
    this.log(`${this.options.name}: ${this.state} → ${state}`);
    this.state = state;
  }

  /** Runs until the coordinator shuts the job down. */
  async run(): Promise<void> {
    this.nc = await connectToNats(this.options.nats, { name: this.options.name, maxReconnectAttempts: 10 });
    this.watchConnection(this.nc);
    for (let session = 0; ; session++) {
      this.enter("joining");
      const welcome = await this.join(this.nc, session > 0);
      if (welcome === undefined) {
        await this.stop(undefined);
        return;
      }
      this.rank = welcome.rank;
      this.lastHeardMs = Date.now();
      this.enter("loading");
      const lost = new Promise<"lost">((resolve) => (this.coordinatorLost = () => resolve("lost")));
      await this.load(this.nc, welcome.job, welcome.worldSize);
      if ((await Promise.race([lost, this.finished])) !== "lost") break;
      await this.endSession();
    }
    await this.stop(this.trainer); // already stopped unless SIGTERM came while loading
    if (this.failure) throw this.failure;
  }

  /** The coordinator is gone: drop everything of its job (ring, heartbeats, replica) before asking again. */
  private async endSession(): Promise<void> {
    this.enter("rejoining");
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.heartbeats?.stop();
    this.commandSubscription?.unsubscribe();
    this.aborted = true;
    this.ring?.abort("the coordinator was lost");
    await this.transport?.close().catch(() => undefined);
    // Every command has its own deadline (a ring wait fails at once after the abort above).
    await this.commands.catch(() => undefined);
    await this.wsListener?.close().catch(() => undefined);
    this.trainer.dispose();
    this.heartbeat = this.heartbeats = this.commandSubscription = undefined;
    this.ring = this.transport = this.wsListener = this.pendingStepFailure = undefined;
    this.aborted = this.commanded = false;
    this.nonce = randomUUID(); // a new member: this worker dropped its state
    this.ringEpoch = this.regroupedEpoch = this.rank = -1;
    this.commands = Promise.resolve();
  }

  /**
   * A connection closed for good (reconnects exhausted) ends this worker with an error, never a hang.
   * While it is only disconnected, the coordinator cannot be heard: its silence is not judged until the
   * connection is back (with a fresh grace period).
   */
  private watchConnection(nc: NatsConnection): void {
    void nc.closed().then((error) => {
      if (this.stopping || this.state === "stopped") return;
      this.failure ??= new UserError(
        `${this.options.name}: lost its NATS connection${error ? ` (${error.message})` : ""}; stopping`,
      );
      this.log(this.failure.message);
      this.served?.health.failed(this.failure.message);
      this.stopped();
    });
    void (async () => {
      for await (const status of nc.status()) {
        if (status.type === "disconnect") {
          this.natsDown = true;
          this.log(`${this.options.name}: NATS disconnected: reconnecting`);
        } else if (status.type === "reconnect") {
          this.natsDown = false;
          this.lastHeardMs = Date.now();
          this.log(`${this.options.name}: NATS reconnected`);
          if (this.pendingStepFailure) this.send(this.pendingStepFailure);
        }
      }
    })();
  }

  /**
   * The coordinator's welcome, or undefined if SIGTERM came first. A refusal ends a first join; a rejoin
   * keeps asking (a coordinator that is alive after all refuses until it has lost this worker's old rank).
   */
  private async join(
    nc: NatsConnection,
    rejoin: boolean,
  ): Promise<Extract<CoordinatorMessage, { type: "welcome" }> | undefined> {
    const subjects = jobSubjects(this.options.job);
    const request: WorkerMessage = {
      type: "join",
      protocol: PROTOCOL_VERSION,
      name: this.options.name,
      device: this.options.device,
      host: hostname(),
      pid: process.pid,
      nonce: this.nonce,
    };
    const deadline = Date.now() + this.options.joinTimeoutMs;
    let lastRefusal = "";
    for (;;) {
      if (this.drainRequested) return undefined;
      try {
        const reply = await nc.request(subjects.join, encodeMessage(request), { timeout: 5000 });
        const message = decodeCoordinatorMessage(reply.data, subjects.join);
        if (message.type === "welcome" && message.job.job !== this.options.job)
          throw new UserError(
            `the coordinator on ${subjects.join} answered for job "${message.job.job}", not "${this.options.job}"`,
          );
        if (message.type === "welcome") return message;
        const refusal = `coordinator refused ${this.options.name}: ${message.type === "reject" ? message.reason : message.type}`;
        if (!rejoin || Date.now() > deadline) throw new UserError(refusal);
        if (refusal !== lastRefusal) this.log(`${refusal}; asking again`);
        lastRefusal = refusal;
        await new Promise((resolve) => setTimeout(resolve, JOIN_RETRY_MS));
      } catch (error) {
        if (error instanceof UserError) throw error;
        if (nc.isClosed())
          throw new UserError(`${this.options.name}: lost its NATS connection while joining`, {
            cause: error,
          });
        // No coordinator yet (no responders, or a timeout): keep asking until the deadline.
        if (Date.now() > deadline) {
          throw new UserError(
            `no coordinator answered on ${subjects.join} within ${this.options.joinTimeoutMs} ms`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, JOIN_RETRY_MS));
      }
    }
  }

  private async load(nc: NatsConnection, job: JobSpec, worldSize: number): Promise<void> {
    const subjects = jobSubjects(this.options.job);
    const options = compileTrainOptions(job.flags as unknown as TrainFlags);
    // A backend that cannot run here ends this worker with one line naming it, its rank and each backend tried.
    const named = (error: unknown) =>
      error instanceof UserError
        ? new UserError(`${this.options.name} (rank ${this.rank}): ${error.message}`, { cause: error })
        : error;
    const backend = await selectBackend(options.backend, parseDevice(this.options.device)).catch((error) => {
      throw named(error);
    });

    this.log(`${this.options.name}: rank ${this.rank}/${worldSize}, ${describeBackend(backend)}`);
    this.served?.process.backendSelected(backend);
    this.served?.process.update({ rank: String(this.rank), model: options.model });
    if (this.rankMetrics) {
      const peak = await resolvePeakFlops(this.options.metrics.peakTflops, this.options.device);
      this.log(
        `${this.options.name}: peak ${(peak.flopsPerSecond / 1e12).toPrecision(3)} TFLOP/s (${peak.source}: ${peak.of})`,
      );
      this.rankMetrics.start(this.rank, peak);
    }
    const run = await prepareRun(options, (line) => this.log(`${this.options.name}: ${line}`));
    if (backend.adapter) {
      const longest = longestInput([run.train, run.heldOut, run.trainEval]);
      try {
        checkWebGpuLimits(backend.adapter, run.model.config, options.microBatchSize, longest);
      } catch (error) {
        throw named(error);
      }
    }
    this.trainOptions = options;
    this.trainer = new Rank(options, run);
    this.wsListener = job.dataPlane === "ws" ? await this.listenRing(job) : undefined;

    // Subscribe before announcing readiness, so `start` cannot be missed.
    this.commandSubscription = nc.subscribe(subjects.rank(this.rank), {
      callback: (_, msg) => {
        let message: CoordinatorMessage;
        try {
          message = decodeCoordinatorMessage(msg.data, msg.subject);
        } catch (error) {
          this.log(`${this.options.name}: ignored a bad command: ${(error as Error).message}`);
          this.served?.process.messageDropped(error instanceof ProtocolError ? error.kind : "malformed");
          return;
        }
        // A worker writes only under its run's directory, whatever a message says.
        if (
          (message.type === "checkpoint" || message.type === "adopt") &&
          !isInside(options.outDir, message.dir)
        ) {
          this.log(
            `${this.options.name}: ignored a ${message.type} naming ${message.dir}: outside the run directory ${options.outDir}`,
          );
          this.served?.process.messageDropped("forbidden");
          return;
        }
        this.lastHeardMs = Date.now();
        if (message.type === "alive") return;
        this.commanded = true;
        if (message.type === "abort") return this.abort(message.reason, this.trainer);
        this.commands = this.commands
          .then(() => this.execute(message, this.trainer, job))
          .catch((error: unknown) => this.fail(error))
          .finally(() => (this.idleSinceMs = Date.now()));
      },
    });
    await nc.flush();
    this.heartbeats = await startHeartbeats({
      nats: this.options.nats,
      subject: subjects.coordinator,
      rank: this.rank,
      periodMs: job.heartbeatMs,
      name: this.options.name,
    });
    // Said again every period until the first command: a lost `ready` must not stall admission.
    const ready: WorkerMessage = {
      type: "ready",
      rank: this.rank,
      dataFingerprint: run.dataFingerprint,
      dataPlaneAddress: this.wsListener?.address ?? "",
      backend: backend.name,
      device: backend.device,
      adapter: backend.adapter ? describeAdapter(backend.adapter) : "",
    };
    this.send(ready);
    // Between commands (this thread is free then), check that the coordinator is still there. A late tick
    // means this thread was busy or starved, with the coordinator's pings still unread: judge next time.
    let lastTickMs = Date.now();
    this.lastHeardMs = lastTickMs; // loading took a while, with nobody to hear from
    this.heartbeat = setInterval(() => {
      const now = Date.now();
      const late = now - lastTickMs > 2 * job.heartbeatMs;
      lastTickMs = now;
      if (!this.commanded) this.send(ready);
      if (!late) this.checkCoordinator(job.coordinatorTimeoutMs, this.trainer);
    }, job.heartbeatMs);
    this.enter("ready");
  }

  private async execute(message: CoordinatorMessage, rank: Rank, job: JobSpec): Promise<void> {
    const nc = this.nc;
    if (nc === undefined || this.state === "stopped") return;
    switch (message.type) {
      case "start":
        // A repeat (its ringReady was lost) finds the ring of that epoch up: just say so again.
        if (message.epoch !== this.ringEpoch || this.ring === undefined) await this.formRing(message, job);
        this.ringEpoch = message.epoch;
        this.send({ type: "ringReady", rank: this.rank, epoch: message.epoch });
        if (this.state !== "training") this.enter("training");
        return;
      case "adopt": {
        // A replacement: take the live ranks' state (saved by one of them), then wait for the new ring.
        // A repeat (its `adopted` was lost) finds this rank at that step already.
        if (this.trainer.completedSteps !== message.step) {
          const options = { ...this.trainOptions, resumeDir: message.dir };
          const run = await prepareRun(options, (line) => this.log(`${this.options.name}: ${line}`));
          const adopted = new Rank(options, run);
          if (adopted.completedSteps !== message.step) {
            adopted.dispose();
            throw new Error(
              `${message.dir} holds step ${adopted.completedSteps}, not step ${message.step} as the coordinator said`,
            );
          }
          rank.dispose();
          this.trainer = adopted;
          this.log(`${this.options.name}: adopted the job's state at step ${adopted.completedSteps}`);
        }
        this.send({ type: "adopted", rank: this.rank, completedSteps: this.trainer.completedSteps });
        return;
      }
      case "regroup": {
        if (message.epoch === this.regroupedEpoch) {
          const dataPlaneAddress = this.wsListener?.address ?? "";
          this.send({ type: "regrouped", rank: this.rank, epoch: message.epoch, dataPlaneAddress });
          return;
        }
        this.regroupedEpoch = message.epoch;
        // The old ring was aborted (and closed) with the step; a ws ring needs a new listener to join.
        this.enter("regrouping");
        await this.wsListener?.close().catch(() => undefined);
        if (job.dataPlane === "ws") this.wsListener = await this.listenRing(job);
        const dataPlaneAddress = this.wsListener?.address ?? "";
        this.send({ type: "regrouped", rank: this.rank, epoch: message.epoch, dataPlaneAddress });
        return;
      }
      case "step": {
        const ring = this.ring;
        if (ring === undefined) throw new Error("step before start");
        if (message.step !== rank.completedSteps) {
          // A duplicated or stale command: running it would apply an update twice.
          this.log(
            `${this.options.name}: ignored step ${message.step + 1}: this rank has completed ${rank.completedSteps} (duplicate or stale command)`,
          );
          this.served?.process.messageDropped("unexpected");
          return;
        }
        let step: Awaited<ReturnType<typeof trainStep>>;
        try {
          step = await trainStep(rank, message.step, message.examples, (buffer) =>
            ring.allReduce(buffer, message.step),
          );
        } catch (error) {
          // The ring broke under this rank: not its own failure. The coordinator finds who was lost.
          if (!(error instanceof RingError) || this.aborted) throw error;
          this.log(`${this.options.name}: step ${message.step + 1} failed in the ring: ${error.message}`);
          this.pendingStepFailure = {
            type: "stepFailed",
            rank: this.rank,
            step: message.step,
            message: error.message,
          };
          this.send(this.pendingStepFailure);
          return;
        }
        const { result, phases } = step;
        this.rankMetrics?.allReduced(job.dataPlane, phases.allreduce);
        this.rankMetrics?.recordMemory();
        // Read asynchronously: webgpu cannot read synchronously under Node.
        const checksum = message.checksum ? await rank.checksumAsync() : null;
        const { numTensors: tensors, numBytes: bytes } = tf.memory();
        const memory = { tensors, bytes };
        this.lastStep = { step: message.step, result, phases };
        this.send({
          type: "stepDone",
          rank: this.rank,
          step: message.step,
          result,
          phases,
          checksum,
          memory,
        });
        return;
      }
      case "eval": {
        const started = performance.now();
        const sums = await rank.evaluateAsync(message.heldOut, message.train);
        const seconds = (performance.now() - started) / 1000;
        this.send({ type: "evalDone", rank: this.rank, requestId: message.requestId, ...sums, seconds });
        return;
      }
      case "checkpoint": {
        const started = performance.now();
        await rank.saveCheckpoint(message.dir, message.seed, message.keep);
        const seconds = (performance.now() - started) / 1000;
        this.send({ type: "checkpointDone", rank: this.rank, step: rank.completedSteps, seconds });
        return;
      }
      case "shutdown":
        this.log(`${this.options.name}: shutdown (${message.reason})`);
        if (message.failed) {
          this.failure ??= new UserError(`${this.options.name}: the job failed (${message.reason})`);
          this.served?.health.failed(message.reason);
        }
        await this.stop(rank);
        return;
      default:
        this.log(`${this.options.name}: unexpected ${message.type} (job ${job.totalSteps} steps)`);
        this.served?.process.messageDropped("unexpected");
    }
  }

  private ring: RingAllReduce | undefined;
  private aborted = false;
  /** The last step applied, repeated in an abort reply (see the aborted message). */
  private lastStep: { step: number; result: StepResult; phases: RankPhaseSeconds } | undefined;
  private wsListener: WsRingListener | undefined;

  /** This rank's link and ring for `start`'s epoch, position and world size. */
  private async formRing(
    message: Extract<CoordinatorMessage, { type: "start" }>,
    job: JobSpec,
  ): Promise<void> {
    const nc = this.nc;
    if (nc === undefined) throw new Error("no NATS connection");
    const { epoch, position, worldSize, peers } = message;
    const next = peers[(position + 1) % worldSize] ?? "";
    const link = this.wsListener
      ? await this.wsListener.connect(position, worldSize, next)
      : await createNatsRingTransport(nc, this.options.job, position, worldSize, { generation: epoch });
    const metrics = this.rankMetrics;
    const plane = job.dataPlane;
    metrics?.plane(plane);
    this.transport = metrics
      ? countingTransport(link, {
          sent: (bytes) => metrics.sent(plane, bytes),
          received: (bytes) => metrics.received(plane, bytes),
        })
      : link;
    // A lost ring message fails the step by name after the worker timeout (which exceeds the longest
    // compute, the longest a first chunk may legitimately wait); drops are logged and counted.
    this.ring = new RingAllReduce(this.transport, {
      messageTimeoutMs: job.ringMessageTimeoutMs,
      wireDtype: job.allreduceDtype ?? "fp32",
      // The step's counts and loss sums behind the gradients stay exact.
      exactTailFloats: STEP_TOTALS.length,
      onDropped: (reason, detail) => {
        this.log(`${this.options.name}: dropped a ring message (${reason}): ${detail}`);
        this.served?.process.messageDropped(reason);
      },
    });
    this.aborted = false;
    this.pendingStepFailure = undefined;
    if (epoch > 0)
      this.log(`${this.options.name}: ring epoch ${epoch}: position ${position} of ${worldSize}`);
  }

  /** This rank's ws listener: peers must present the job's ring token; a refused one is logged and counted. */
  private listenRing(job: JobSpec): Promise<WsRingListener> {
    return listenWsRing(this.options.advertiseHost, 0, {
      ...(job.ringToken === undefined ? {} : { token: job.ringToken }),
      onRefused: (detail) => {
        this.log(`${this.options.name}: refused ${detail}`);
        this.served?.process.messageDropped("forbidden");
      },
    });
  }

  /** A peer is gone: cancel the step in flight (its update is never applied) and report where we stand. */
  private abort(reason: string, rank: Rank): void {
    this.log(`${this.options.name}: abort (${reason})`);
    this.aborted = true;
    const transport = this.transport;
    this.ring?.abort(reason);
    this.transport = undefined;
    this.ring = undefined;
    void transport?.close().catch(() => undefined);
    // Queue the reply behind the cancelled step so it reports the steps actually applied.
    this.commands = this.commands
      .catch(() => undefined)
      .then(() =>
        this.send({
          type: "aborted",
          rank: this.rank,
          completedSteps: rank.completedSteps,
          ...(this.lastStep ? { lastStep: this.lastStep } : {}),
        }),
      );
  }

  /** SIGTERM: finish the step in flight, then tell the coordinator, which stops the job with a checkpoint. */
  drain(): void {
    this.served?.health.stopping("SIGTERM: draining");
    if (this.state === "training" || this.state === "ready") {
      this.enter("draining");
      void this.commands.then(() => this.send({ type: "leaving", rank: this.rank, reason: "SIGTERM" }));
    } else {
      this.drainRequested = true;
      if (this.state !== "joining" && this.state !== "rejoining") this.stopped();
    }
  }

  /**
   * A coordinator that is gone would leave this worker waiting forever: ask for a new one (a coordinator
   * restarted with --resume), or stop if this worker was draining anyway.
   */
  private checkCoordinator(timeoutMs: number, rank: Rank): void {
    const silentMs = Date.now() - Math.max(this.lastHeardMs, this.idleSinceMs);
    if (silentMs <= timeoutMs || this.natsDown || this.state === "stopped" || this.failure) return;
    const silence = `${this.options.name}: the coordinator went silent for ${Math.round(silentMs)} ms`;
    if (this.state === "draining") {
      this.failure = new UserError(`${silence}; stopping`);
      this.served?.health.failed(this.failure.message);
      this.log(this.failure.message);
      void this.stop(rank);
      return;
    }
    const lost = this.coordinatorLost;
    if (lost === undefined) return; // already rejoining
    this.coordinatorLost = undefined;
    this.log(`${silence}; asking for a coordinator for up to ${this.options.joinTimeoutMs} ms`);
    lost();
  }

  private fail(error: unknown): void {
    const message = error instanceof Error ? error.message : String(error);
    if (!this.aborted) this.served?.health.failed(message);
    this.log(`${this.options.name}: ${message}`);
    // After an abort the cancelled step's failure is expected; the `aborted` reply says where we stand.
    if (this.rank >= 0 && !this.aborted) this.send({ type: "failed", rank: this.rank, message });
  }

  private send(message: WorkerMessage): void {
    this.nc?.publish(jobSubjects(this.options.job).coordinator, encodeMessage(message));
  }

  private async stop(rank: Rank | undefined): Promise<void> {
    if (this.state === "stopped" || this.stopping) return;
    this.stopping = true;
    if (this.heartbeat) clearInterval(this.heartbeat);
    await this.heartbeats?.stop();
    this.served?.health.stopping("job over");
    await this.transport?.close().catch(() => undefined);
    // A worker that never joined a ring (ready, waiting to be admitted, when the job ends) still has its
    // ring server listening, which alone would keep the process alive after "stopped".
    await this.wsListener?.close().catch(() => undefined);
    rank?.dispose();
    await this.nc?.drain().catch(() => undefined);
    this.enter("stopped");
    this.stopped();
  }
}

/** Whether `path` is `dir` or below it (both resolved against the working directory). */
function isInside(dir: string, path: string): boolean {
  const fromDir = relative(resolve(dir), resolve(path));
  return !fromDir.startsWith("..") && !isAbsolute(fromDir);
}
