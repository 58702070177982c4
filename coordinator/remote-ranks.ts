// N workers over NATS, as a RankGroup: membership (join → welcome → ready → start), one request per step
// fanned out to every rank, replies gathered, and a watchdog that turns a silent worker into an error
// naming it. On failure, `salvage` aborts the in-flight step on the live ranks and has one of them save
// the last completed step, so nothing that was trained is lost.
import type { NatsConnection, Subscription } from "nats";
import type { Log } from "../shared/data/load.js";
import { UserError } from "../shared/errors.js";
import {
  PROTOCOL_VERSION,
  decodeWorkerMessage,
  encodeMessage,
  jobSubjects,
  type CoordinatorMessage,
  type JobSpec,
  type WorkerMessage,
} from "../shared/protocol.js";
import type { DropReason } from "../shared/metrics/process-metrics.js";
import type { CheckpointRecord, RankPhaseSeconds } from "../shared/metrics/records.js";
import {
  addSums,
  type GroupCheckpoint,
  type GroupEval,
  type GroupStep,
  type RankGroup,
} from "./rank-group.js";

/** What membership reports as it happens (the job's metrics listen). */
export interface MembershipEvents {
  /** `count` workers have joined so far. */
  joined(count: number): void;
  lost(rank: number): void;
  dropped(reason: DropReason): void;
}

const NO_EVENTS: MembershipEvents = { joined: () => {}, lost: () => {}, dropped: () => {} };

/** A worker failed, left or went silent; the job cannot continue with a fixed world size. */
export class WorkerLostError extends UserError {
  override readonly name = "WorkerLostError";
  constructor(
    readonly rank: number,
    readonly worker: string,
    readonly reason: string,
  ) {
    super(`worker ${worker} (rank ${rank}) ${reason}`);
  }
}

/** Ranks disagree on their weights: the data-parallel invariant is broken. */
export class ChecksumMismatchError extends UserError {
  override readonly name = "ChecksumMismatchError";
  constructor(
    readonly step: number,
    readonly checksums: readonly number[],
  ) {
    const groups = new Map<number, number[]>();
    checksums.forEach((c, rank) => groups.set(c, [...(groups.get(c) ?? []), rank]));
    const described = [...groups.entries()].map(
      ([c, ranks]) => `ranks ${ranks.join(",")}: ${c.toString(16)}`,
    );
    super(`parameter checksums differ after step ${step} (${described.join("; ")})`);
  }
}

export interface RemoteRanksOptions {
  readonly job: string;
  readonly workers: number;
  readonly spec: JobSpec;
  readonly dataFingerprint: string;
  readonly joinTimeoutMs: number;
  /** A worker silent for this long is lost; it must exceed the longest step's compute. */
  readonly workerTimeoutMs: number;
  readonly events?: MembershipEvents;
}

interface Member {
  readonly name: string;
  readonly host: string;
  lastSeenMs: number;
  dataPlaneAddress?: string;
}

type Reply = Extract<
  WorkerMessage,
  { type: "ready" | "stepDone" | "evalDone" | "checkpointDone" | "aborted" }
>;

/** Collects one reply of a kind from each of a set of ranks, or fails. */
class Gather<T extends Reply> {
  readonly replies = new Map<number, T>();
  readonly done: Promise<Map<number, T>>;
  private settle!: (value: Map<number, T>) => void;
  fail!: (error: Error) => void;

  constructor(
    readonly type: T["type"],
    readonly key: number,
    readonly ranks: ReadonlySet<number>,
  ) {
    this.done = new Promise((resolve, reject) => {
      this.settle = resolve;
      this.fail = reject;
    });
  }

  offer(rank: number, message: T): void {
    if (!this.ranks.has(rank)) return;
    this.replies.set(rank, message);
    if (this.replies.size === this.ranks.size) this.settle(this.replies);
  }
}

function replyKey(message: Reply): number {
  switch (message.type) {
    case "stepDone":
      return message.step;
    case "evalDone":
      return message.requestId;
    default:
      return 0;
  }
}

export class RemoteRanks implements RankGroup {
  private readonly subjects;
  private readonly members: Member[] = [];
  private readonly lost = new Map<number, WorkerLostError>();
  private readonly gathers = new Set<Gather<Reply>>();
  private readonly subscriptions: Subscription[] = [];
  private watchdog: NodeJS.Timeout | undefined;
  private evalRequests = 0;
  private readonly events: MembershipEvents;
  /** Called when a worker announces it is leaving (SIGTERM): the job should stop after this step. */
  onLeaving: (rank: number, reason: string) => void = () => {};

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: RemoteRanksOptions,
    private readonly log: Log,
  ) {
    this.subjects = jobSubjects(options.job);
    this.events = options.events ?? NO_EVENTS;
  }

  get worldSize(): number {
    return this.options.workers;
  }

  /** Waits for `workers` workers to join and load the job, then starts them. */
  static async gather(nc: NatsConnection, options: RemoteRanksOptions, log: Log): Promise<RemoteRanks> {
    const ranks = new RemoteRanks(nc, options, log);
    await ranks.admit();
    return ranks;
  }

  private async admit(): Promise<void> {
    const { workers, joinTimeoutMs } = this.options;
    const everyone = new Set(Array.from({ length: workers }, (_, r) => r));
    const ready = this.expect("ready", 0, everyone);
    this.subscriptions.push(
      this.nc.subscribe(this.subjects.coordinator, {
        callback: (_, msg) => this.receive(msg.data, msg.subject),
      }),
      this.nc.subscribe(this.subjects.join, {
        callback: (_, msg) => msg.respond(encodeMessage(this.join(msg.data, msg.subject))),
      }),
    );
    await this.nc.flush();
    this.log(`waiting for ${workers} workers on ${this.subjects.join} (timeout ${joinTimeoutMs / 1000} s)`);
    const timeout = setTimeout(() => {
      const missing = workers - this.members.length;
      ready.fail(
        new UserError(
          `only ${this.members.length} of ${workers} workers joined within ${joinTimeoutMs} ms (${missing} missing)`,
        ),
      );
    }, joinTimeoutMs);
    try {
      const replies = await ready.done;
      for (const [rank, message] of replies) {
        if (message.type !== "ready") continue;
        if (message.dataFingerprint !== this.options.dataFingerprint) {
          throw new WorkerLostError(
            rank,
            this.nameOf(rank),
            `read different data (fingerprint ${message.dataFingerprint}, coordinator ${this.options.dataFingerprint}); every node needs the same files`,
          );
        }
        const member = this.members[rank];
        if (member) member.dataPlaneAddress = message.dataPlaneAddress;
      }
    } catch (error) {
      // Whoever joined must not wait forever for a job that will not start.
      this.members.forEach((_, rank) =>
        this.send(rank, { type: "shutdown", reason: (error as Error).message }),
      );
      throw error;
    } finally {
      clearTimeout(timeout);
    }
    // The join subscription stays: a late worker gets a clear "already has its workers" reply.
    const peers = this.members.map((m) => m.dataPlaneAddress ?? "");
    for (let rank = 0; rank < workers; rank++) this.send(rank, { type: "start", peers });
    this.startWatchdog();
    this.log(
      `started ${workers} workers: ${this.members.map((m, r) => `${r}=${m.name}@${m.host}`).join(", ")}`,
    );
  }

  private join(bytes: Uint8Array, subject: string): CoordinatorMessage {
    let message: WorkerMessage;
    try {
      message = decodeWorkerMessage(bytes, subject);
    } catch (error) {
      return { type: "reject", reason: (error as Error).message };
    }
    if (message.type !== "join") return { type: "reject", reason: `expected join, got ${message.type}` };
    if (message.protocol !== PROTOCOL_VERSION) {
      return {
        type: "reject",
        reason: `protocol ${message.protocol} does not match the coordinator's ${PROTOCOL_VERSION}; run the same imtrain version everywhere`,
      };
    }
    if (this.members.length >= this.options.workers) {
      return {
        type: "reject",
        reason: `job ${this.options.job} already has its ${this.options.workers} workers`,
      };
    }
    const rank = this.members.length;
    this.members.push({ name: message.name, host: message.host, lastSeenMs: Date.now() });
    this.events.joined(this.members.length);
    this.log(
      `worker ${message.name} (${message.host}, pid ${message.pid}, ${message.device}) joined as rank ${rank}`,
    );
    return { type: "welcome", rank, worldSize: this.options.workers, job: this.options.spec };
  }

  private nameOf(rank: number): string {
    return this.members[rank]?.name ?? `#${rank}`;
  }

  private receive(bytes: Uint8Array, subject: string): void {
    let message: WorkerMessage;
    try {
      message = decodeWorkerMessage(bytes, subject);
    } catch (error) {
      this.log(`ignored a bad message: ${(error as Error).message}`);
      this.events.dropped("malformed");
      return;
    }
    if (message.type === "join") return;
    const member = this.members[message.rank];
    if (member === undefined) {
      this.log(`ignored ${message.type} from unknown rank ${message.rank}`);
      this.events.dropped("unknown_rank");
      return;
    }
    member.lastSeenMs = Date.now();
    switch (message.type) {
      case "heartbeat":
        return;
      case "failed":
        return this.markLost(message.rank, `failed: ${message.message}`);
      case "leaving":
        this.log(`worker ${member.name} (rank ${message.rank}) is leaving: ${message.reason}`);
        return this.onLeaving(message.rank, message.reason);
      default:
        for (const gather of this.gathers) {
          if (gather.type === message.type && gather.key === replyKey(message))
            gather.offer(message.rank, message);
        }
    }
  }

  private markLost(rank: number, reason: string): void {
    if (this.lost.has(rank)) return;
    const error = new WorkerLostError(rank, this.nameOf(rank), reason);
    this.lost.set(rank, error);
    this.log(error.message);
    this.events.lost(rank);
    for (const gather of this.gathers) if (gather.ranks.has(rank)) gather.fail(error);
  }

  private startWatchdog(): void {
    const period = Math.max(50, Math.min(1000, this.options.workerTimeoutMs / 4));
    let lastAliveMs = 0;
    this.watchdog = setInterval(() => {
      const now = Date.now();
      if (now - lastAliveMs >= this.options.spec.heartbeatMs) {
        lastAliveMs = now;
        this.members.forEach((_, rank) => this.send(rank, { type: "alive" }));
      }
      this.members.forEach((member, rank) => {
        const silentMs = now - member.lastSeenMs;
        if (silentMs > this.options.workerTimeoutMs)
          this.markLost(rank, `went silent for ${Math.round(silentMs)} ms (lost?)`);
      });
    }, period);
    this.watchdog.unref();
  }

  private expect<T extends Reply>(type: T["type"], key: number, ranks: ReadonlySet<number>): Gather<T> {
    const gather = new Gather<T>(type, key, ranks);
    for (const rank of ranks) {
      const lost = this.lost.get(rank);
      if (lost) gather.fail(lost);
    }
    this.gathers.add(gather as unknown as Gather<Reply>);
    void gather.done.then(
      () => this.gathers.delete(gather as unknown as Gather<Reply>),
      () => this.gathers.delete(gather as unknown as Gather<Reply>),
    );
    return gather;
  }

  private send(rank: number, message: CoordinatorMessage): void {
    this.nc.publish(this.subjects.rank(rank), encodeMessage(message));
  }

  private allRanks(): Set<number> {
    return new Set(this.members.map((_, r) => r));
  }

  async step(
    step: number,
    assignments: readonly (readonly number[])[],
    compareChecksums: boolean,
  ): Promise<GroupStep> {
    const gather = this.expect<Extract<Reply, { type: "stepDone" }>>("stepDone", step, this.allRanks());
    assignments.forEach((examples, rank) =>
      this.send(rank, { type: "step", step, examples: [...examples], checksum: compareChecksums }),
    );
    const replies = await gather.done;
    const results = [...replies.values()];
    if (compareChecksums) {
      const missing = [...replies.entries()].find(([, m]) => m.checksum === null);
      if (missing)
        throw new WorkerLostError(missing[0], this.nameOf(missing[0]), "sent no checksum when asked");
      const checksums = [...replies.entries()].sort(([a], [b]) => a - b).map(([, m]) => m.checksum ?? -1);
      if (new Set(checksums).size > 1) throw new ChecksumMismatchError(step + 1, checksums);
    }
    const first = results[0];
    if (first === undefined) throw new Error("no ranks");
    const rankPhases: RankPhaseSeconds[] = [...replies.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, m]) => m.phases);
    return { result: first.result, rankPhases };
  }

  async evaluate(
    heldOut: readonly (readonly number[])[],
    train: readonly (readonly number[])[],
  ): Promise<GroupEval> {
    const requestId = ++this.evalRequests;
    const gather = this.expect<Extract<Reply, { type: "evalDone" }>>("evalDone", requestId, this.allRanks());
    for (let rank = 0; rank < this.worldSize; rank++) {
      this.send(rank, {
        type: "eval",
        requestId,
        heldOut: [...(heldOut[rank] ?? [])],
        train: [...(train[rank] ?? [])],
      });
    }
    const replies = [...(await gather.done).entries()].sort(([a], [b]) => a - b).map(([, m]) => m);
    return {
      heldOut: addSums(replies.map((r) => r.heldOut)),
      train: addSums(replies.map((r) => r.train)),
      rankSeconds: replies.map((r) => r.seconds),
    };
  }

  /** The lowest rank still alive writes the checkpoint (all hold identical state). */
  async checkpoint(dir: string, seed: number): Promise<GroupCheckpoint> {
    const writer = this.members.findIndex((_, rank) => !this.lost.has(rank));
    if (writer < 0) throw new UserError("no live worker left to write a checkpoint");
    const gather = this.expect<Extract<Reply, { type: "checkpointDone" }>>(
      "checkpointDone",
      0,
      new Set([writer]),
    );
    this.send(writer, { type: "checkpoint", dir, seed });
    const reply = (await gather.done).get(writer);
    return { rank: writer, seconds: reply?.seconds ?? 0 };
  }

  /**
   * After a failure mid-step: the live ranks drop the unfinished step (their weights are still those of
   * the last completed one) and one of them saves it. Returns what was saved.
   */
  async salvage(dir: string, seed: number, timeoutMs: number): Promise<CheckpointRecord> {
    const live = new Set([...this.allRanks()].filter((rank) => !this.lost.has(rank)));
    if (live.size === 0) throw new UserError("no live worker left to save a checkpoint");
    const gather = this.expect<Extract<Reply, { type: "aborted" }>>("aborted", 0, live);
    for (const rank of live) this.send(rank, { type: "abort", reason: "a worker was lost" });
    const timer = setTimeout(
      () => gather.fail(new UserError(`live workers did not confirm the abort within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const replies = await gather.done;
      const steps = new Set([...replies.values()].map((m) => m.completedSteps));
      if (steps.size !== 1)
        throw new UserError(
          `live workers disagree on completed steps (${[...steps].join(", ")}); not saving`,
        );
      const saved = await this.checkpoint(dir, seed);
      return { step: [...steps][0] ?? 0, checkpoint_s: saved.seconds, rank: saved.rank };
    } finally {
      clearTimeout(timer);
    }
  }

  async close(reason: string): Promise<void> {
    if (this.watchdog) clearInterval(this.watchdog);
    for (let rank = 0; rank < this.members.length; rank++) this.send(rank, { type: "shutdown", reason });
    await this.nc.flush().catch(() => undefined);
    for (const subscription of this.subscriptions) subscription.unsubscribe();
  }
}
