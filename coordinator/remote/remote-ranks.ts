// N workers over NATS, as a RankGroup: admission (membership.ts), liveness (liveness.ts), and per request
// (step, eval, checkpoint) one message fanned out to every rank and their replies gathered (gather.ts)
// under a deadline. On failure, `salvage` aborts the in-flight step on the live ranks and has one of them
// save the last completed step, so nothing that was trained is lost.
import type { NatsConnection, Subscription } from "nats";
import type { Log } from "../../shared/data/load.js";
import { UserError } from "../../shared/errors.js";
import type { CheckpointRecord } from "../../shared/metrics/records.js";
import {
  decodeWorkerMessage,
  encodeMessage,
  jobSubjects,
  type CoordinatorMessage,
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
import { ChecksumMismatchError, LostReplyError, RingBrokenError, WorkerLostError } from "./errors.js";
import { Gather, type Reply } from "./gather.js";
import { watchLiveness, type LivenessWatch } from "./liveness.js";
import { Membership, NO_EVENTS, type MembershipEvents } from "./membership.js";

/** What salvage saved, and the step it includes that the job had not recorded (if any). */
export interface Salvaged {
  readonly checkpoint: CheckpointRecord;
  readonly applied?: GroupStep & { readonly step: number };
}

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
  readonly events?: MembershipEvents;
}

/** How a recovery goes: see RemoteRanks.recover. */
export interface RecoveryOptions {
  /** The ring needs at least this many ranks (--min-workers)... */
  readonly minWorkers: number;
  /** ...and waits this long for replacements to make it up (0: it gives up at once). */
  readonly replacementTimeoutMs: number;
  /** Where a live rank saves its state for replacements to adopt, and the run's seed (saved with it). */
  readonly handoffDir: string;
  readonly seed: number;
  /** How long the live ranks may take to confirm the abort. */
  readonly timeoutMs: number;
}

/** How often recovery looks for replacements while it waits for them. */
const REPLACEMENT_POLL_MS = 200;

type ReplyOf<K extends Reply["type"]> = Extract<Reply, { type: K }>;

export class RemoteRanks implements RankGroup {
  private readonly subjects;
  private readonly membership: Membership;
  private readonly events: MembershipEvents;
  private readonly gathers = new Set<Gather<Reply>>();
  private readonly subscriptions: Subscription[] = [];
  /**
   * How long a request's replies may take: a step is a rank's compute plus an all-reduce that can wait for
   * the slowest rank's compute, so about twice the longest compute, which --worker-timeout-ms bounds.
   */
  private readonly replyTimeoutMs: number;
  private liveness: LivenessWatch | undefined;
  private evalRequests = 0;
  /** The members in the current ring, by position: position p is member ring[p]. */
  private ring: number[] = [];
  /** Steps the job has completed (recorded) through this group. */
  private completedSteps = 0;
  /** A step that failed as a whole but that some ranks applied (they got every ring message first). */
  private interruptedStep: (GroupStep & { readonly step: number }) | undefined;
  /**
   * A step every live rank applied though the job saw it fail (a reply was lost on the way): recovery
   * completes it with the result they all share, and the job's retry of that step returns it.
   */
  private completedInRecovery: (GroupStep & { readonly step: number }) | undefined;
  /** Replacements that joined a running job and loaded it: they enter the ring at the next step. */
  private readonly replacements = new Set<number>();
  /** Ranks whose `ready` has come: workers repeat it until their first command, and repeats are expected. */
  private readonly readied = new Set<number>();
  private epoch = 0;
  private sendFailed = false;
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
    this.membership.onLost((error) => {
      for (const gather of this.gathers) if (gather.ranks.has(error.rank)) gather.fail(error);
    });
    this.replyTimeoutMs = 2 * options.workerTimeoutMs;
    this.completedSteps = options.completedSteps;
  }

  /** Ranks in the current ring: fewer than --workers after a recovery. */
  get worldSize(): number {
    return this.ring.length;
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
    const ready = this.expect("ready", 0, everyone).deadline(joinTimeoutMs, (missing) => {
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
      (rank, message) => this.send(rank, message),
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
      }
      // The join subscription stays: a late worker gets a clear "already has its workers" reply.
      await this.formRing(
        this.membership.members.map((_, rank) => rank),
        this.membership.members.map((m) => m.dataPlaneAddress ?? ""),
      );
    } catch (error) {
      // Whoever joined must not wait forever for a job that will not start.
      this.liveness.stop();
      this.membership.members.forEach((_, rank) =>
        this.send(rank, { type: "shutdown", reason: (error as Error).message, failed: true }),
      );
      throw error;
    }
    this.liveness.resume();
    this.watchConnection();
    const started = this.membership.members.map((m, r) => `${r}=${m.name}@${m.host}`).join(", ");
    this.log(`started ${workers} workers: ${started}`);
  }

  /**
   * Forms the ring of the current epoch from `members` (in position order) and waits until every one has
   * it up, so no rank sends a ring message to a subscription that does not exist yet.
   */
  private async formRing(members: readonly number[], addresses: readonly string[]): Promise<void> {
    const ready = this.request(
      "ringReady",
      this.epoch,
      new Set(members),
      `the ring of epoch ${this.epoch}`,
      "lose",
    );
    const epoch = this.epoch;
    this.sendUntilAnswered(ready, (rank) => ({
      type: "start",
      epoch,
      position: members.indexOf(rank),
      worldSize: members.length,
      peers: [...addresses],
    }));
    await ready.done;
    this.ring = [...members];
  }

  /**
   * Elastic recovery after a lost rank, as a logged sequence: the live ranks drop the step in flight (their
   * state is the last completed step's, identical on all), leave their ring, and form a new one without
   * the lost; the job then redoes the step on the same global batch. With fewer than --min-workers left it
   * waits (bounded) for replacements, which adopt the live ranks' state. Refused (the job then salvages)
   * when that wait ends without them, or when the live ranks are not all at one step.
   */
  async recover(options: RecoveryOptions, joining: readonly number[] = []): Promise<void> {
    // A rank lost during recovery (it was the one that broke the ring, found only now) makes another try
    // with the rest; each try loses at least one rank, so this ends.
    for (;;) {
      try {
        return await this.reformRing(options, joining);
      } catch (error) {
        if (!(error instanceof WorkerLostError)) throw error;
        this.log(`recovery: ${error.message}; trying again without it`);
      }
    }
  }

  private async reformRing(options: RecoveryOptions, joining: readonly number[]): Promise<void> {
    const { minWorkers, timeoutMs } = options;
    let live = [...this.ring, ...joining].filter((rank) => this.membership.isLive(rank));
    if (live.length === 0 || (live.length < minWorkers && options.replacementTimeoutMs === 0))
      throw new UserError(`${live.length} live workers is fewer than --min-workers ${minWorkers}`);
    this.log(`recovery: aborting the step on ranks ${live.join(",")}`);
    const aborted = await this.abortStep(live, timeoutMs, "re-forming the ring");
    const silent = live.find((rank) => !aborted.has(rank));
    if (silent !== undefined)
      throw this.membership.lostError(silent) ?? new UserError(`rank ${silent} did not confirm the abort`);
    const done = this.completedSteps;
    const stepOf = (rank: number) => aborted.get(rank)?.completedSteps ?? -1;
    const steps = new Set(live.map(stepOf));
    const applied = this.interruptedStep;
    if (this.ring.length > 0 && applied?.step === done && steps.has(done + 1) && !steps.has(done + 2)) {
      // Ranks that got the step's whole all-reduce applied it (the same update on each); only a reply, or
      // the last ring message to the others, was lost. The step is complete: a rank that did not apply it
      // adopts the state of one that did (its checksum, if due, is compared at the next checksum step).
      const behind = live.filter((rank) => stepOf(rank) === done);
      const writer = live.find((rank) => stepOf(rank) === done + 1) ?? -1;
      this.log(`recovery: step ${done + 1} was applied by rank ${writer}; it is complete, not redone`);
      const caughtUp = await this.handOver(writer, done + 1, behind, options.handoffDir, options.seed);
      const missed = behind.find((rank) => !caughtUp.includes(rank));
      if (missed !== undefined)
        throw (
          this.membership.lostError(missed) ?? new UserError(`rank ${missed} did not adopt step ${done + 1}`)
        );
      this.completedInRecovery = applied;
      this.completedSteps = done + 1;
    } else if (steps.size !== 1 || (this.ring.length > 0 && !steps.has(done)))
      // Not one step everywhere, with no record of the step ahead: redoing it could apply it twice. The job
      // stops and saves instead.
      throw new UserError(
        `live workers have completed ${[...steps].join(", ")} steps, the job ${done}; cannot re-form the ring`,
      );
    if (live.length < minWorkers) live = await this.awaitReplacements(live, options);
    this.epoch++;
    this.log(`recovery: ring epoch ${this.epoch} with ranks ${live.join(",")}`);
    const regrouped = this.request("regrouped", this.epoch, new Set(live), `regroup ${this.epoch}`, "lose");
    const epoch = this.epoch;
    this.sendUntilAnswered(regrouped, () => ({ type: "regroup", epoch }));
    const replies = await regrouped.done;
    await this.formRing(
      live,
      live.map((rank) => replies.get(rank)?.dataPlaneAddress ?? ""),
    );
    const next = this.completedInRecovery ? "going on with" : "redoing";
    this.log(`recovery: ${live.length} ranks in the ring; ${next} step ${this.completedSteps + 1}`);
  }

  /**
   * Replacements that joined after a loss and loaded the job enter at a step boundary: the first live
   * rank saves its state (weights, optimizer moments, step) into `dir`, each replacement adopts it, and the
   * ring is re-formed with them. A replacement that fails on the way is lost; the job goes on without it.
   */
  async admitReplacements(dir: string, seed: number, timeoutMs: number): Promise<void> {
    const writer = this.ring.find((rank) => this.membership.isLive(rank));
    if (writer === undefined) return;
    const ready = await this.handOver(writer, this.completedSteps, this.takeReplacements(), dir, seed);
    if (ready.length === 0) return;
    const options = { minWorkers: 1, replacementTimeoutMs: 0, handoffDir: dir, seed, timeoutMs };
    await this.recover(options, ready);
  }

  /** The live replacements waiting to enter the ring, taken off the waiting list. */
  private takeReplacements(): number[] {
    const waiting = [...this.replacements].filter((rank) => this.membership.isLive(rank));
    this.replacements.clear();
    return waiting;
  }

  /**
   * `writer` saves its state (`step` steps) through `dir` and each of `ranks` adopts it; returns those that did (one
   * that does not answer in time is lost, as hung).
   */
  private async handOver(
    writer: number,
    step: number,
    ranks: readonly number[],
    dir: string,
    seed: number,
  ): Promise<number[]> {
    if (ranks.length === 0) return [];
    this.log(
      `ranks ${ranks.join(",")}: handing over the state of rank ${writer} at step ${step} through ${dir}`,
    );
    const saved = await this.checkpointFrom(writer, step, dir, seed);
    const adopted = this.request("adopted", step, new Set(ranks), "adopting the job's state", "lose");
    this.sendUntilAnswered(adopted, () => ({ type: "adopt", dir, step }));
    await adopted.done.catch(() => undefined);
    const ready = ranks.filter((rank) => adopted.replies.has(rank));
    if (ready.length > 0)
      this.log(`ranks ${ready.join(",")} adopted the state of step ${step} (rank ${saved.rank}'s)`);
    return ready;
  }

  /**
   * Fewer than --min-workers are live (their step aborted, all at the job's step): wait for replacements
   * to join and load the job, up to --replacement-timeout-ms, and hand them the live ranks' state. Returns
   * the ranks of the new ring; a live rank lost meanwhile fails the wait (recovery tries again without it).
   */
  private async awaitReplacements(live: readonly number[], options: RecoveryOptions): Promise<number[]> {
    const { minWorkers, replacementTimeoutMs } = options;
    const deadline = Date.now() + replacementTimeoutMs;
    let ring = [...live];
    this.log(
      `recovery: ${ring.length} live workers, fewer than --min-workers ${minWorkers}: waiting up to ${replacementTimeoutMs / 1000} s for ${minWorkers - ring.length} replacements (imtrain worker --job ${this.options.job})`,
    );
    while (ring.length < minWorkers) {
      const lost = ring.find((rank) => !this.membership.isLive(rank));
      if (lost !== undefined) throw this.membership.lostError(lost) ?? new UserError(`rank ${lost} was lost`);
      const waiting = [...this.replacements].filter((rank) => this.membership.isLive(rank));
      if (ring.length + waiting.length >= minWorkers) {
        const joining = this.takeReplacements();
        const { handoffDir, seed } = options;
        const writer = ring[0] ?? -1;
        ring = [...ring, ...(await this.handOver(writer, this.completedSteps, joining, handoffDir, seed))];
        continue;
      }
      if (Date.now() > deadline)
        throw new UserError(
          `${ring.length} live workers is fewer than --min-workers ${minWorkers}, and no replacement came within ${replacementTimeoutMs} ms (--replacement-timeout-ms)`,
        );
      await new Promise((resolve) => setTimeout(resolve, REPLACEMENT_POLL_MS));
    }
    return ring;
  }

  /**
   * A NATS connection that closes for good fails whatever waits on workers, at once. While it is only
   * disconnected (nats.js reconnects), liveness pauses: an outage of the bus is not a loss of workers.
   */
  private watchConnection(): void {
    void this.nc.closed().then((error) => {
      const why = `the coordinator lost its NATS connection${error ? `: ${error.message}` : ""}`;
      for (const gather of this.gathers) gather.fail(new UserError(why));
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
      this.events.dropped("malformed");
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
        if (this.ring.length === 0 || this.ring.includes(message.rank)) break; // admission's, below
        if (message.dataFingerprint !== this.options.dataFingerprint) {
          this.membership.markLost(message.rank, "read different data; every node needs the same files");
          return;
        }
        this.log(
          `worker ${this.membership.nameOf(message.rank)} (rank ${message.rank}) is ready: it joins the ring at the next step`,
        );
        this.replacements.add(message.rank);
        return;
      case "failed":
        return this.membership.markLost(message.rank, `failed: ${message.message}`);
      case "stepFailed": {
        // The ring broke under this rank (a peer lost, a message lost, NATS restarted): the step cannot
        // finish. Recovery re-forms the ring from whoever is alive then, and the step is redone.
        this.log(`rank ${message.rank}: step ${message.step + 1} failed in the ring: ${message.message}`);
        const broken = new RingBrokenError(message.rank, message.step, message.message);
        for (const gather of this.gathers)
          if (gather.type === "stepDone" && gather.key === message.step) gather.fail(broken);
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
    let taken = false;
    for (const gather of this.gathers) taken = gather.offer(message.rank, message as Reply) || taken;
    if (!taken && message.type === "stepDone" && message.step === this.completedSteps) {
      // A step's result that came after its gather failed: the rank applied it. Recovery can complete the
      // step with it rather than stop (see reformRing).
      if (this.interruptedStep?.step !== message.step)
        this.interruptedStep = {
          step: message.step,
          result: message.result,
          rankPhases: [message.phases],
          ranks: [message.rank],
        };
    }
    if (!taken) {
      // A duplicate, or a reply that came after its request's deadline: never acted on twice.
      this.log(`ignored an unexpected ${message.type} from rank ${message.rank} (late or duplicated)`);
      this.events.dropped("unexpected");
    }
  }

  private expect<K extends Reply["type"]>(
    type: K,
    key: number,
    ranks: ReadonlySet<number>,
  ): Gather<ReplyOf<K>> {
    const gather = new Gather<ReplyOf<K>>(type, key, ranks);
    for (const rank of ranks) {
      const lost = this.membership.lostError(rank);
      if (lost) gather.fail(lost);
    }
    const entry = gather as unknown as Gather<Reply>;
    this.gathers.add(entry);
    void gather.done.then(
      () => this.gathers.delete(entry),
      () => this.gathers.delete(entry),
    );
    return gather;
  }

  /**
   * A request's gather, failing by name after the reply deadline. A rank that misses it but still sends
   * heartbeats (liveness loses the silent ones) most likely lost a message: for a training request that
   * is `LostReplyError`, recovered by re-forming the ring with everyone, and a rank that then misses the
   * recovery's own requests (`lose`) is presumed hung and lost.
   */
  private request<K extends Reply["type"]>(
    type: K,
    key: number,
    ranks: ReadonlySet<number>,
    what: string,
    missed: "retry" | "lose" = "retry",
  ) {
    return this.expect(type, key, ranks).deadline(this.replyTimeoutMs, (missing) => {
      const first = missing[0] ?? -1;
      const reason = `sent no ${type} for ${what} within ${this.replyTimeoutMs} ms (2 × --worker-timeout-ms)`;
      if (missed === "retry")
        return new LostReplyError(first, this.membership.nameOf(first), `${reason}: lost message?`);
      for (const rank of missing) this.membership.markLost(rank, `${reason}: hung?`);
      return (
        this.membership.lostError(first) ?? new WorkerLostError(first, this.membership.nameOf(first), reason)
      );
    });
  }

  /**
   * Sends `message(rank)` to every rank of `gather` now, and again every heartbeat period to those that
   * have not replied, until it settles: recovery's commands must survive a message lost to an outage of
   * the bus (core NATS drops what a disconnected subscriber misses). Workers answer repeats idempotently.
   */
  private sendUntilAnswered<T extends Reply>(
    gather: Gather<T>,
    message: (rank: number) => CoordinatorMessage,
  ): void {
    const sendMissing = () => {
      for (const rank of gather.ranks) if (!gather.replies.has(rank)) this.send(rank, message(rank));
    };
    sendMissing();
    const timer = setInterval(sendMissing, Math.max(100, this.options.spec.heartbeatMs));
    timer.unref();
    void gather.done.then(
      () => clearInterval(timer),
      () => clearInterval(timer),
    );
  }

  /** Publishing on a closed connection throws; that is reported once (watchConnection fails the job). */
  private send(rank: number, message: CoordinatorMessage): void {
    try {
      this.nc.publish(this.subjects.rank(rank), encodeMessage(message));
    } catch (error) {
      if (this.sendFailed) return;
      this.sendFailed = true;
      this.log(`cannot send to workers: ${(error as Error).message}`);
    }
  }

  private ringRanks(): Set<number> {
    return new Set(this.ring);
  }

  async step(
    step: number,
    assignments: readonly (readonly number[])[],
    compareChecksums: boolean,
  ): Promise<GroupStep> {
    const completed = this.completedInRecovery;
    this.completedInRecovery = undefined;
    if (completed?.step === step) return completed;
    const gather = this.request("stepDone", step, this.ringRanks(), `step ${step + 1}`);
    assignments.forEach((examples, position) =>
      this.send(this.ring[position] ?? -1, {
        type: "step",
        step,
        examples: [...examples],
        checksum: compareChecksums,
      }),
    );
    const done = await gather.done.catch((error: unknown) => {
      // Ranks that replied applied the step (its result is the same on every rank): keep it, in case the
      // state saved after this failure is theirs.
      const [rank, first] = [...gather.replies.entries()][0] ?? [];
      if (rank !== undefined && first)
        this.interruptedStep = { step, result: first.result, rankPhases: [first.phases], ranks: [rank] };
      throw error;
    });
    const replies = this.ring.map((rank): [number, ReplyOf<"stepDone">] => {
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
    this.completedSteps = step + 1;
    return { result: first.result, rankPhases: replies.map(([, m]) => m.phases), ranks: [...this.ring] };
  }

  async evaluate(
    heldOut: readonly (readonly number[])[],
    train: readonly (readonly number[])[],
  ): Promise<GroupEval> {
    const requestId = ++this.evalRequests;
    const gather = this.request("evalDone", requestId, this.ringRanks(), `eval ${requestId}`);
    for (const [position, rank] of this.ring.entries()) {
      this.send(rank, {
        type: "eval",
        requestId,
        heldOut: [...(heldOut[position] ?? [])],
        train: [...(train[position] ?? [])],
      });
    }
    const done = await gather.done;
    const replies = this.ring.flatMap((rank) => done.get(rank) ?? []);
    return {
      heldOut: addSums(replies.map((r) => r.heldOut)),
      train: addSums(replies.map((r) => r.train)),
      rankSeconds: replies.map((r) => r.seconds),
      ranks: [...this.ring],
    };
  }

  /** The lowest rank still alive writes the checkpoint (all hold identical state). */
  async checkpoint(dir: string, seed: number): Promise<GroupCheckpoint> {
    const writer = this.ring.find((rank) => this.membership.isLive(rank));
    if (writer === undefined) throw new UserError("no live worker left to write a checkpoint");
    return this.checkpointFrom(writer, this.completedSteps, dir, seed);
  }

  /** `writer`, which has completed `step` steps, saves them into `dir`. */
  private async checkpointFrom(
    writer: number,
    step: number,
    dir: string,
    seed: number,
  ): Promise<GroupCheckpoint> {
    // Keyed by the step, so a late copy of an earlier checkpoint's reply cannot stand for this one.
    const gather = this.request("checkpointDone", step, new Set([writer]), `a checkpoint of step ${step}`);
    this.send(writer, { type: "checkpoint", dir, seed });
    const reply = (await gather.done).get(writer);
    return { rank: writer, seconds: reply?.seconds ?? 0 };
  }

  /**
   * Asks `ranks` to drop the step in flight (re-sent until answered) and returns the answers: how many
   * steps each has applied. A rank that does not answer within `timeoutMs` is lost, as hung.
   */
  private async abortStep(
    ranks: readonly number[],
    timeoutMs: number,
    reason: string,
  ): Promise<ReadonlyMap<number, ReplyOf<"aborted">>> {
    const gather = this.expect("aborted", 0, new Set(ranks)).deadline(timeoutMs, (missing) => {
      for (const rank of missing)
        this.membership.markLost(rank, `did not confirm the abort within ${timeoutMs} ms (hung?)`);
      return new UserError(`ranks ${missing.join(",")} did not confirm the abort within ${timeoutMs} ms`);
    });
    this.sendUntilAnswered(gather, () => ({ type: "abort", reason }));
    await gather.done.catch(() => undefined);
    return gather.replies;
  }

  /**
   * After a failure mid-step: the live ranks drop the unfinished step and report how many steps they
   * have applied, and one of the furthest saves. Ranks can differ by one: when an exchange's last message
   * is lost, the ranks that received everything applied the step (all with the same bits) and the rest
   * did not; both states are true states of the run, so the later one is kept. Returns what was saved.
   */
  async salvage(dir: string, seed: number, timeoutMs: number): Promise<Salvaged> {
    const live = new Set(this.membership.liveRanks());
    if (live.size === 0) throw new UserError("no live worker left to save a checkpoint");
    // Whoever answers in time can save; the rest are lost.
    const answered = await this.abortStep([...live], timeoutMs, "the job is stopping: saving what it has");
    const replies = [...answered.entries()].sort(([a], [b]) => a - b);
    if (replies.length === 0)
      throw new UserError(`no live worker confirmed the abort within ${timeoutMs} ms`);
    const furthest = Math.max(...replies.map(([, m]) => m.completedSteps));
    const steps = new Set(replies.map(([, m]) => m.completedSteps));
    if (furthest - Math.min(...steps) > 1)
      throw new UserError(`live workers are more than one step apart (${[...steps].join(", ")}); not saving`);
    const writer = replies.find(([, m]) => m.completedSteps === furthest)?.[0] ?? 0;
    const saved = await this.checkpointFrom(writer, furthest, dir, seed);
    const checkpoint = { step: furthest, checkpoint_s: saved.seconds, rank: saved.rank };
    // The state saved includes a step the job never recorded: hand its result over so it is.
    const interrupted = this.interruptedStep;
    const applied =
      furthest > this.completedSteps && interrupted?.step === this.completedSteps ? interrupted : undefined;
    return applied ? { checkpoint, applied } : { checkpoint };
  }

  /** Shuts every worker down; `failed` makes them exit non-zero. */
  async close(reason: string, failed = false): Promise<void> {
    this.liveness?.stop();
    for (let rank = 0; rank < this.membership.members.length; rank++)
      this.send(rank, { type: "shutdown", reason, failed });
    await this.nc.flush().catch(() => undefined);
    for (const subscription of this.subscriptions) subscription.unsubscribe();
  }
}
