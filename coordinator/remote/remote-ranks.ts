// N workers over NATS, as a RankGroup: admission (membership.ts), liveness (liveness.ts), requests and
// their replies (requests.ts), and the ring with its recovery (ring.ts). This file routes what workers
// send and runs the job's requests: a step, an eval, a checkpoint.
import type { NatsConnection, Subscription } from "nats";
import type { Log } from "../../shared/data/load.js";
import { unreachableRingAddress } from "./ws-reachability.js";
import { UserError } from "../../shared/errors.js";
import {
  ProtocolError,
  decodeWorkerMessage,
  encodeMessage,
  jobSubjects,
  type JobSpec,
  type WorkerMessage,
} from "../../shared/protocol.js";
import {
  addSums,
  type GroupCheckpoint,
  type GroupEval,
  type GroupStep,
  type RankGroup,
} from "../rank-group.js";
import { ChecksumMismatchError, RingBrokenError, WorkerLostError } from "./errors.js";
import type { Reply } from "./gather.js";
import { watchLiveness, type LivenessWatch } from "./liveness.js";
import { Membership, NO_EVENTS, type MembershipEvents } from "./membership.js";
import { Requests, type ReplyOf } from "./requests.js";
import { Ring, type RecoveryOptions, type Salvaged } from "./ring.js";
import { summarizeRankComputes, type ComputeSummary } from "../job-records.js";

export type { RecoveryOptions, Salvaged } from "./ring.js";

export interface RemoteRanksOptions {
  readonly job: string;
  readonly workers: number;
  readonly spec: JobSpec;
  readonly dataFingerprint: string;
  readonly joinTimeoutMs: number;
  /** The longest a step's compute may take: replies are due within twice this. */
  readonly workerTimeoutMs: number;
  /** A worker whose heartbeats stop this long is lost. */
  readonly heartbeatTimeoutMs: number;
  /** Steps already done when this group starts (a resumed run). */
  readonly completedSteps: number;
  /** The run's --keep-checkpoints. */
  readonly keepCheckpoints: number;
  /** Ranks may run on different backends. */
  readonly allowMixedBackends: boolean;
  readonly events?: MembershipEvents;
}

type Compute = Pick<Extract<WorkerMessage, { type: "ready" }>, "backend" | "device" | "adapter">;

function describeCompute(compute: Compute | undefined): string {
  if (compute === undefined) return "?";
  return `${compute.backend} on ${compute.device}${compute.adapter ? `, ${compute.adapter}` : ""}`;
}

export class RemoteRanks implements RankGroup {
  private readonly subjects;
  private readonly membership: Membership;
  private readonly events: MembershipEvents;
  private readonly requests: Requests;
  private readonly ring: Ring;
  private readonly subscriptions: Subscription[] = [];
  private liveness: LivenessWatch | undefined;
  private evalRequests = 0;
  /** What each rank computes on, as its `ready` said. */
  private readonly computes = new Map<number, Compute>();
  /** Ranks whose `ready` has come: workers repeat it until their first command, and repeats are expected. */
  private readonly readied = new Set<number>();
  /** Called when a worker announces it is leaving (SIGTERM): the job should stop after this step. */
  onLeaving: (rank: number, reason: string) => void = () => {};

  private constructor(
    private readonly nc: NatsConnection,
    private readonly options: RemoteRanksOptions,
    private readonly log: Log,
  ) {
    this.subjects = jobSubjects(options.job);
    this.events = options.events ?? NO_EVENTS;
    this.membership = new Membership(options.job, options.workers, options.spec, this.events, log);
    this.requests = new Requests(
      nc,
      this.membership,
      { job: options.job, replyTimeoutMs: 2 * options.workerTimeoutMs, resendMs: options.spec.heartbeatMs },
      log,
    );
    const { job, completedSteps, keepCheckpoints } = options;
    this.ring = new Ring(this.requests, this.membership, job, completedSteps, keepCheckpoints, log);
  }

  /** Ranks in the current ring: fewer than --workers after a recovery. */
  get worldSize(): number {
    return this.ring.members.length;
  }

  /** What the ranks in the ring compute on, as their `ready` said. */
  computeSummary(): ComputeSummary {
    return summarizeRankComputes(
      this.ring.members.map((rank) => {
        const compute = this.computes.get(rank);
        return {
          rank,
          name: this.membership.nameOf(rank),
          backend: compute?.backend ?? "",
          device: compute?.device ?? "",
          adapter: compute?.adapter ?? "",
        };
      }),
    );
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
    const ready = this.requests.expect("ready", 0, everyone).deadline(joinTimeoutMs, (missing) => {
      const joined = this.membership.members.length;
      return new UserError(
        `only ${joined} of ${workers} workers joined and loaded the job within ${joinTimeoutMs} ms (${missing.length} missing)`,
      );
    });
    this.subscriptions.push(
      this.nc.subscribe(this.subjects.coordinator, {
        callback: (_, msg) => this.receive(msg.data, msg.subject),
      }),
      this.nc.subscribe(this.subjects.join, {
        callback: (_, msg) => msg.respond(encodeMessage(this.membership.join(msg.data, msg.subject))),
      }),
    );
    await this.nc.flush();
    // Pinged from the start, so a worker that is ready first does not take the wait for the others as
    // the coordinator's silence; judged only once all are in (loading a model may take minutes).
    this.liveness = watchLiveness(
      this.membership,
      { heartbeatMs: this.options.spec.heartbeatMs, heartbeatTimeoutMs: this.options.heartbeatTimeoutMs },
      (rank, message) => this.requests.send(rank, message),
    );
    this.liveness.pause();
    this.log(`waiting for ${workers} workers on ${this.subjects.join} (timeout ${joinTimeoutMs / 1000} s)`);
    try {
      for (const [rank, message] of await ready.done) {
        if (message.dataFingerprint !== this.options.dataFingerprint) {
          throw new WorkerLostError(
            rank,
            this.membership.nameOf(rank),
            `read different data (fingerprint ${message.dataFingerprint}, coordinator ${this.options.dataFingerprint}); every node needs the same files`,
          );
        }
        const member = this.membership.members[rank];
        if (member) member.dataPlaneAddress = message.dataPlaneAddress;
        this.computes.set(rank, message);
      }
      this.refuseMixedBackends();
      const unreachable = unreachableRingAddress(
        this.membership.members.map((m) => ({ ...m, dataPlaneAddress: m.dataPlaneAddress ?? "" })),
      );
      if (unreachable !== undefined) throw new UserError(unreachable);
      // The join subscription stays: a late worker gets a clear "already has its workers" reply.
      await this.ring.form(
        this.membership.members.map((_, rank) => rank),
        this.membership.members.map((m) => m.dataPlaneAddress ?? ""),
      );
    } catch (error) {
      // Whoever joined must not wait forever for a job that will not start.
      this.liveness.stop();
      this.membership.members.forEach((_, rank) =>
        this.requests.send(rank, { type: "shutdown", reason: (error as Error).message, failed: true }),
      );
      throw error;
    }
    this.liveness.resume();
    this.watchConnection();
    const started = this.membership.members
      .map((m, r) => `${r}=${m.name}@${m.host} (${describeCompute(this.computes.get(r))})`)
      .join(", ");
    this.log(`started ${workers} workers: ${started}`);
  }

  /**
   * Ranks on different backends compute different float bits (AdamW's, at least): the job would end in a
   * checksum mismatch with no hint why. Refused at admission, naming each rank's, unless allowed.
   */
  private refuseMixedBackends(): void {
    const backends = new Set([...this.computes.values()].map((compute) => compute.backend));
    if (backends.size <= 1 || this.options.allowMixedBackends) return;
    const each = [...this.computes.entries()]
      .map(([rank, compute]) => `rank ${rank} (${this.membership.nameOf(rank)}): ${describeCompute(compute)}`)
      .join("; ");
    throw new UserError(
      `the workers run on different backends (${each}): their arithmetic differs, so their weights would drift apart; run one backend everywhere, or pass --allow-mixed-backends with --checksum-every 0`,
    );
  }

  /**
   * What ended a failed job, whole: `error` and, when recovery failed after it, why, with each lost worker
   * it does not already name. On the ws plane a killed worker's peer sees the link close before heartbeats
   * time out, so `error` is the ring breaking while the loss is what the user must hear about.
   */
  explainFailure(error: Error, recoveryFailure: string | undefined): string {
    const parts = [
      error.message,
      ...(recoveryFailure === undefined ? [] : [`recovery failed: ${recoveryFailure}`]),
    ];
    for (const lost of this.membership.lostErrors())
      if (!parts.some((part) => part.includes(lost.message))) parts.push(lost.message);
    return parts.join("; ");
  }

  /** A replacement on another backend than the job's is lost, by name; true if it was. */
  private refuseReplacementBackend(message: Extract<WorkerMessage, { type: "ready" }>): boolean {
    const jobBackend = [...this.computes.values()][0]?.backend;
    if (this.options.allowMixedBackends || jobBackend === undefined || message.backend === jobBackend)
      return false;
    const why = `runs backend ${message.backend}, the job ${jobBackend} (see --allow-mixed-backends)`;
    this.membership.markLost(message.rank, why);
    return true;
  }

  /**
   * A NATS connection that closes for good fails whatever waits on workers, at once. While it is only
   * disconnected (nats.js reconnects), liveness pauses: an outage of the bus is not a loss of workers.
   */
  private watchConnection(): void {
    void this.nc.closed().then((error) => {
      const why = `the coordinator lost its NATS connection${error ? `: ${error.message}` : ""}`;
      this.requests.failWhere(() => true, new UserError(why));
    });
    void (async () => {
      for await (const status of this.nc.status()) {
        if (status.type === "disconnect") {
          this.log(`NATS disconnected (${String(status.data)}): reconnecting; liveness paused`);
          this.liveness?.pause();
        } else if (status.type === "reconnect") {
          this.log(`NATS reconnected (${String(status.data)}): liveness resumed`);
          this.liveness?.resume();
        }
      }
    })();
  }

  private receive(bytes: Uint8Array, subject: string): void {
    let message: WorkerMessage;
    try {
      message = decodeWorkerMessage(bytes, subject);
    } catch (error) {
      this.log(`ignored a bad message: ${(error as Error).message}`);
      this.events.dropped(error instanceof ProtocolError ? error.kind : "malformed");
      return;
    }
    if (message.type === "join") return;
    if (this.membership.heardFrom(message.rank, message.type) === undefined) return;
    switch (message.type) {
      case "heartbeat":
        return;
      case "ready":
        if (this.readied.has(message.rank)) return;
        this.readied.add(message.rank);
        if (this.ring.members.length === 0 || this.ring.members.includes(message.rank)) break; // admission's
        if (message.dataFingerprint !== this.options.dataFingerprint) {
          this.membership.markLost(message.rank, "read different data; every node needs the same files");
          return;
        }
        if (this.refuseReplacementBackend(message)) return;
        this.computes.set(message.rank, message);
        return this.ring.addReplacement(message.rank);
      case "failed":
        return this.membership.markLost(message.rank, `failed: ${message.message}`);
      case "stepFailed": {
        // The ring broke under this rank (a peer lost, a message lost, NATS restarted): the step cannot
        // finish. Recovery re-forms the ring from whoever is alive then, and the step is redone.
        this.log(`rank ${message.rank}: step ${message.step + 1} failed in the ring: ${message.message}`);
        const broken = new RingBrokenError(message.rank, message.step, message.message);
        this.requests.failWhere((g) => g.type === "stepDone" && g.key === message.step, broken);
        return;
      }
      case "leaving":
        this.log(
          `worker ${this.membership.nameOf(message.rank)} (rank ${message.rank}) is leaving: ${message.reason}`,
        );
        return this.onLeaving(message.rank, message.reason);
      default:
        break;
    }
    if (this.requests.offer(message.rank, message as Reply)) return;
    // A step's result that came after its gather failed: the rank applied it (recovery may complete it).
    if (message.type === "stepDone")
      this.ring.stepApplied(message.step, message.rank, message.result, message.phases);
    // A duplicate, or a reply that came after its request's deadline: never acted on twice.
    this.log(`ignored an unexpected ${message.type} from rank ${message.rank} (late or duplicated)`);
    this.events.dropped("unexpected");
  }

  async step(
    step: number,
    assignments: readonly (readonly number[])[],
    compareChecksums: boolean,
  ): Promise<GroupStep> {
    const completed = this.ring.takeCompletedInRecovery(step);
    if (completed) return completed;
    const members = this.ring.members;
    const gather = this.requests.request("stepDone", step, new Set(members), `step ${step + 1}`);
    assignments.forEach((examples, position) =>
      this.requests.send(members[position] ?? -1, {
        type: "step",
        step,
        examples: [...examples],
        checksum: compareChecksums,
      }),
    );
    const done = await gather.done.catch((error: unknown) => {
      // Ranks that replied applied the step: keep it, in case the state saved after this failure is theirs.
      const [rank, first] = [...gather.replies.entries()][0] ?? [];
      if (rank !== undefined && first) this.ring.stepApplied(step, rank, first.result, first.phases);
      throw error;
    });
    const replies = members.map((rank): [number, ReplyOf<"stepDone">] => {
      const reply = done.get(rank);
      if (reply === undefined) throw new Error(`no stepDone from rank ${rank}`);
      return [rank, reply];
    });
    if (compareChecksums) {
      const missing = replies.find(([, m]) => m.checksum === null);
      if (missing)
        throw new WorkerLostError(
          missing[0],
          this.membership.nameOf(missing[0]),
          "sent no checksum when asked",
        );
      const checksums = replies.map(([, m]) => m.checksum ?? -1);
      if (new Set(checksums).size > 1) throw new ChecksumMismatchError(step + 1, checksums);
    }
    const first = replies[0]?.[1];
    if (first === undefined) throw new Error("no ranks");
    this.ring.stepCompleted(step);
    return {
      result: first.result,
      rankPhases: replies.map(([, m]) => m.phases),
      ranks: [...members],
      memory: first.memory,
    };
  }

  async evaluate(
    heldOut: readonly (readonly number[])[],
    train: readonly (readonly number[])[],
  ): Promise<GroupEval> {
    const requestId = ++this.evalRequests;
    const members = this.ring.members;
    const gather = this.requests.request("evalDone", requestId, new Set(members), `eval ${requestId}`);
    for (const [position, rank] of members.entries()) {
      this.requests.send(rank, {
        type: "eval",
        requestId,
        heldOut: [...(heldOut[position] ?? [])],
        train: [...(train[position] ?? [])],
      });
    }
    const done = await gather.done;
    const replies = members.flatMap((rank) => done.get(rank) ?? []);
    return {
      heldOut: addSums(replies.map((r) => r.heldOut)),
      train: addSums(replies.map((r) => r.train)),
      rankSeconds: replies.map((r) => r.seconds),
      ranks: [...members],
    };
  }

  /** The lowest rank still alive writes the checkpoint (all hold identical state). */
  async checkpoint(dir: string, seed: number): Promise<GroupCheckpoint> {
    const writer = this.ring.writer;
    if (writer === undefined) throw new UserError("no live worker left to write a checkpoint");
    const keep = this.options.keepCheckpoints;
    return this.requests.checkpoint(writer, this.ring.completedSteps, { dir, seed, keep });
  }

  recover(options: RecoveryOptions): Promise<void> {
    return this.ring.recover(options);
  }

  admitReplacements(dir: string, seed: number, timeoutMs: number): Promise<void> {
    return this.ring.admitReplacements(dir, seed, timeoutMs);
  }

  salvage(dir: string, seed: number, timeoutMs: number): Promise<Salvaged> {
    return this.ring.salvage(dir, seed, timeoutMs);
  }

  /** Shuts every worker down; `failed` makes them exit non-zero. */
  async close(reason: string, failed = false): Promise<void> {
    this.liveness?.stop();
    for (let rank = 0; rank < this.membership.members.length; rank++)
      this.requests.send(rank, { type: "shutdown", reason, failed });
    await this.nc.flush().catch(() => undefined);
    for (const subscription of this.subscriptions) subscription.unsubscribe();
  }
}
