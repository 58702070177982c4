// The coordinator's half of the control plane: a command sent to ranks and their replies gathered
// (gather.ts) under a deadline, and the two requests the rest builds on (a checkpoint, and aborting the
// step in flight).
//
// Why request/reply with deadlines rather than sequence numbers: every reply names its request (type and
// key: the step, an eval's id, a ring epoch), so a duplicated or late reply finds no gather and is dropped
// and counted; a lost one fails its request by name at the deadline; and the commands recovery depends on
// are re-sent until answered, which workers handle idempotently.
import type { NatsConnection } from "nats";
import type { Log } from "../../shared/data/load.js";
import { UserError } from "../../shared/errors.js";
import { encodeMessage, jobSubjects, type CoordinatorMessage } from "../../shared/protocol.js";
import type { GroupCheckpoint } from "../rank-group.js";
import { LostReplyError, WorkerLostError } from "./errors.js";
import { Gather, type Reply } from "./gather.js";
import type { Membership } from "./membership.js";

export type ReplyOf<K extends Reply["type"]> = Extract<Reply, { type: K }>;

export interface RequestsOptions {
  readonly job: string;
  /**
   * How long a request's replies may take: a step is a rank's compute plus an all-reduce that can wait for
   * the slowest rank's compute, so about twice the longest compute, which --worker-timeout-ms bounds.
   */
  readonly replyTimeoutMs: number;
  /** How often an unanswered command is sent again (the heartbeat period). */
  readonly resendMs: number;
}

export class Requests {
  private readonly gathers = new Set<Gather<Reply>>();
  private readonly subjects;
  private sendFailed = false;

  constructor(
    private readonly nc: NatsConnection,
    private readonly membership: Membership,
    private readonly options: RequestsOptions,
    private readonly log: Log,
  ) {
    this.subjects = jobSubjects(options.job);
    membership.onLost((error) => this.failWhere((gather) => gather.ranks.has(error.rank), error));
  }

  /** Publishing on a closed connection throws; that is reported once (the closed connection fails the job). */
  send(rank: number, message: CoordinatorMessage): void {
    try {
      this.nc.publish(this.subjects.rank(rank), encodeMessage(message));
    } catch (error) {
      if (this.sendFailed) return;
      this.sendFailed = true;
      this.log(`cannot send to workers: ${(error as Error).message}`);
    }
  }

  /** A gather for one reply of `type` and `key` from each of `ranks`; one already lost fails it at once. */
  expect<K extends Reply["type"]>(type: K, key: number, ranks: ReadonlySet<number>): Gather<ReplyOf<K>> {
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
  request<K extends Reply["type"]>(
    type: K,
    key: number,
    ranks: ReadonlySet<number>,
    what: string,
    missed: "retry" | "lose" = "retry",
  ): Gather<ReplyOf<K>> {
    const timeoutMs = this.options.replyTimeoutMs;
    return this.expect(type, key, ranks).deadline(timeoutMs, (missing) => {
      const first = missing[0] ?? -1;
      const reason = `sent no ${type} for ${what} within ${timeoutMs} ms (2 × --worker-timeout-ms)`;
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
  sendUntilAnswered<T extends Reply>(gather: Gather<T>, message: (rank: number) => CoordinatorMessage): void {
    const sendMissing = () => {
      for (const rank of gather.ranks) if (!gather.replies.has(rank)) this.send(rank, message(rank));
    };
    sendMissing();
    const timer = setInterval(sendMissing, Math.max(100, this.options.resendMs));
    timer.unref();
    void gather.done.then(
      () => clearInterval(timer),
      () => clearInterval(timer),
    );
  }

  /** Offers a reply to whoever waits for it; false if nobody does (a duplicate, or late). */
  offer(rank: number, reply: Reply): boolean {
    let taken = false;
    for (const gather of this.gathers) taken = gather.offer(rank, reply) || taken;
    return taken;
  }

  failWhere(waitsOn: (gather: Gather<Reply>) => boolean, error: Error): void {
    for (const gather of this.gathers) if (waitsOn(gather)) gather.fail(error);
  }

  /** `writer`, which has completed `step` steps, saves them into `dir` (which keeps `keep` checkpoints). */
  async checkpoint(
    writer: number,
    step: number,
    target: { readonly dir: string; readonly seed: number; readonly keep: number },
  ): Promise<GroupCheckpoint> {
    const { dir, seed, keep } = target;
    // Keyed by the step, so a late copy of an earlier checkpoint's reply cannot stand for this one.
    const gather = this.request("checkpointDone", step, new Set([writer]), `a checkpoint of step ${step}`);
    this.send(writer, { type: "checkpoint", dir, seed, keep });
    const reply = (await gather.done).get(writer);
    return { rank: writer, seconds: reply?.seconds ?? 0 };
  }

  /**
   * Asks `ranks` to drop the step in flight (re-sent until answered) and returns the answers: how many
   * steps each has applied. A rank that does not answer within `timeoutMs` is lost, as hung.
   */
  async abortStep(
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
}
