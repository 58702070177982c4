// The job's ring as the coordinator keeps it (its members by position, its epoch, the steps completed
// through it), and elastic recovery as an explicit, logged state machine:
//
//   steady → aborting → reconciling ──────────────────────────────────→ regrouping → forming → steady
//                           ├→ catching-up (a step some ranks applied) ──┤
//                           └→ awaiting-replacements (< --min-workers) ──┘
//   any state → steady with an error thrown: the job then stops and salvages (the furthest rank saves).
//
// aborting: the live ranks drop the step in flight. reconciling: they report the steps they applied; all
// at the job's step is the usual case (the step is redone). catching-up: some applied the step (they got
// its whole all-reduce before the loss): it is complete, and the rest adopt the state of one that did.
// awaiting-replacements: fewer than --min-workers are live, so wait (bounded) for new workers, which
// adopt the live ranks' state. regrouping, forming: the ring of a new epoch from the live ranks.
import type { ReplyOf } from "./requests.js";
import type { Log } from "../../shared/data/load.js";
import { UserError } from "../../shared/errors.js";
import type { StepResult } from "../../shared/protocol.js";
import type { CheckpointRecord, RankPhaseSeconds } from "../../shared/metrics/records.js";
import type { GroupStep } from "../rank-group.js";
import { WorkerLostError } from "./errors.js";
import type { Membership } from "./membership.js";
import type { Requests } from "./requests.js";

export type RecoveryState =
  "steady" | "aborting" | "reconciling" | "catching-up" | "awaiting-replacements" | "regrouping" | "forming";

/** How a recovery goes (see Ring.recover). */
export interface RecoveryOptions {
  /** The ring needs at least this many ranks (--min-workers)... */
  readonly minWorkers: number;
  /** ...and waits this long for replacements to make it up (0: it gives up at once). */
  readonly replacementTimeoutMs: number;
  /** Where a live rank saves its state for others to adopt, and the run's seed (saved with it). */
  readonly handoffDir: string;
  readonly seed: number;
  /** How long the live ranks may take to confirm the abort. */
  readonly timeoutMs: number;
}

/** A step as one rank reported it: its result is the same on every rank that applied it. */
export type AppliedStep = GroupStep & { readonly step: number };

/** What salvage saved, and the step it includes that the job had not recorded (if any). */
export interface Salvaged {
  readonly checkpoint: CheckpointRecord;
  readonly applied?: AppliedStep;
}

/**
 * Step `done` as the ranks' abort replies report it, when every live rank applied it: each stepDone of it was
 * lost (NATS restarting while the ws ring finished the step), but the update is on every rank, identical.
 */
function appliedByAll(
  live: readonly number[],
  aborted: ReadonlyMap<number, ReplyOf<"aborted">>,
  done: number,
): AppliedStep | undefined {
  const last = live.map((rank) => aborted.get(rank)?.lastStep);
  if (last.length === 0 || last.some((s) => s?.step !== done)) return undefined;
  const first = last[0];
  if (first === undefined) return undefined;
  return {
    step: done,
    result: first.result,
    rankPhases: last.map((s) => s?.phases ?? first.phases),
    ranks: live,
  };
}

/** How often recovery looks for replacements while it waits for them. */
const REPLACEMENT_POLL_MS = 200;

export class Ring {
  private positions: number[] = [];
  private epoch = 0;
  private completed: number;
  private state: RecoveryState = "steady";
  /** The last step that failed as a whole but that some ranks applied (they got every ring message). */
  private interrupted: AppliedStep | undefined;
  /** A step recovery completed (see catching-up): the job's retry of that step returns it. */
  private completedInRecovery: AppliedStep | undefined;
  /** Workers that joined a running job and loaded it: they enter the ring at the next step boundary. */
  private readonly replacements = new Set<number>();

  constructor(
    private readonly requests: Requests,
    private readonly membership: Membership,
    private readonly job: string,
    completedSteps: number,
    /** The run's --keep-checkpoints, for what salvage saves. */
    private readonly keepCheckpoints: number,
    private readonly log: Log,
  ) {
    this.completed = completedSteps;
  }

  /** The members (worker ranks) by ring position. */
  get members(): readonly number[] {
    return this.positions;
  }

  /** Steps the job has completed through this ring. */
  get completedSteps(): number {
    return this.completed;
  }

  /** The lowest live member: it writes checkpoints (all hold identical state). */
  get writer(): number | undefined {
    return this.positions.find((rank) => this.membership.isLive(rank));
  }

  stepCompleted(step: number): void {
    this.completed = step + 1;
  }

  /** A rank applied `step` though the step failed as a whole: kept, so recovery can complete the step. */
  stepApplied(step: number, rank: number, result: StepResult, phases: RankPhaseSeconds): void {
    if (step !== this.completed || this.interrupted?.step === step) return;
    this.interrupted = { step, result, rankPhases: [phases], ranks: [rank] };
  }

  /** The step recovery completed, if it is `step` (once). */
  takeCompletedInRecovery(step: number): AppliedStep | undefined {
    const completed = this.completedInRecovery;
    this.completedInRecovery = undefined;
    return completed?.step === step ? completed : undefined;
  }

  addReplacement(rank: number): void {
    this.log(
      `worker ${this.membership.nameOf(rank)} (rank ${rank}) is ready: it joins the ring at the next step`,
    );
    this.replacements.add(rank);
  }

  private enter(state: RecoveryState): void {
    if (state !== this.state) this.log(`recovery: ${this.state} → ${state}`);
    this.state = state;
  }

  /**
   * Forms the ring of the current epoch from `members` (in position order) and waits until every one has
   * it up, so no rank sends a ring message to a subscription that does not exist yet.
   */
  async form(members: readonly number[], addresses: readonly string[]): Promise<void> {
    const epoch = this.epoch;
    const ready = this.requests.request(
      "ringReady",
      epoch,
      new Set(members),
      `the ring of epoch ${epoch}`,
      "lose",
    );
    this.requests.sendUntilAnswered(ready, (rank) => ({
      type: "start",
      epoch,
      position: members.indexOf(rank),
      worldSize: members.length,
      peers: [...addresses],
    }));
    await ready.done;
    this.positions = [...members];
  }

  /**
   * Elastic recovery after a lost rank (or a broken ring, or a lost reply), from the live members and
   * `joining` (replacements that adopted the state): see the state machine above. The job then redoes the
   * step on the same global batch (or goes on, if recovery completed it). Throws when the job must stop.
   */
  async recover(options: RecoveryOptions, joining: readonly number[] = []): Promise<void> {
    // A rank lost during recovery (it was the one that broke the ring, found only now) makes another try
    // with the rest; each try loses at least one rank, so this ends.
    for (;;) {
      try {
        await this.reform(options, joining);
        this.enter("steady");
        return;
      } catch (error) {
        this.enter("steady");
        if (!(error instanceof WorkerLostError)) throw error;
        this.log(`recovery: ${error.message}; trying again without it`);
      }
    }
  }

  private async reform(options: RecoveryOptions, joining: readonly number[]): Promise<void> {
    const { minWorkers, timeoutMs } = options;
    let live = [...this.positions, ...joining].filter((rank) => this.membership.isLive(rank));
    if (live.length === 0 || (live.length < minWorkers && options.replacementTimeoutMs === 0))
      throw new UserError(`${live.length} live workers is fewer than --min-workers ${minWorkers}`);
    this.enter("aborting");
    this.log(`recovery: aborting the step on ranks ${live.join(",")}`);
    const aborted = await this.requests.abortStep(live, timeoutMs, "re-forming the ring");
    const silent = live.find((rank) => !aborted.has(rank));
    if (silent !== undefined)
      throw this.membership.lostError(silent) ?? new UserError(`rank ${silent} did not confirm the abort`);

    this.enter("reconciling");
    const done = this.completed;
    const stepOf = (rank: number) => aborted.get(rank)?.completedSteps ?? -1;
    const steps = new Set(live.map(stepOf));
    const applied = this.interrupted ?? appliedByAll(live, aborted, done);
    if (applied?.step === done && steps.has(done + 1) && !steps.has(done + 2)) {
      await this.catchUp(
        live.filter((rank) => stepOf(rank) === done),
        live.find((rank) => stepOf(rank) === done + 1) ?? -1,
        options,
      );
      this.completedInRecovery = applied;
      this.completed = done + 1;
    } else if (steps.size !== 1 || !steps.has(done)) {
      // Not one step everywhere, with no record of the step ahead: redoing it could apply it twice. The job
      // stops and saves instead.
      throw new UserError(
        `live workers have completed ${[...steps].join(", ")} steps, the job ${done}; cannot re-form the ring`,
      );
    }
    if (live.length < minWorkers) live = await this.awaitReplacements(live, options);

    this.enter("regrouping");
    this.epoch++;
    this.log(`recovery: ring epoch ${this.epoch} with ranks ${live.join(",")}`);
    const epoch = this.epoch;
    const regrouped = this.requests.request("regrouped", epoch, new Set(live), `regroup ${epoch}`, "lose");
    this.requests.sendUntilAnswered(regrouped, () => ({ type: "regroup", epoch }));
    const replies = await regrouped.done;
    this.enter("forming");
    await this.form(
      live,
      live.map((rank) => replies.get(rank)?.dataPlaneAddress ?? ""),
    );
    const next = this.completedInRecovery ? "going on with" : "redoing";
    this.log(`recovery: ${live.length} ranks in the ring; ${next} step ${this.completed + 1}`);
  }

  /**
   * Ranks that got the step's whole all-reduce applied it (the same update on each); only a reply, or the
   * last ring message to the others, was lost. The step is complete: each rank `behind` adopts the state
   * of `writer`, which applied it (its checksum, if due, is compared at the next checksum step).
   */
  private async catchUp(behind: readonly number[], writer: number, options: RecoveryOptions): Promise<void> {
    const step = this.completed + 1;
    this.log(`recovery: step ${step} was applied by rank ${writer}; it is complete, not redone`);
    if (behind.length === 0) return;
    this.enter("catching-up");
    const caughtUp = await this.handOver(writer, step, behind, options);
    const missed = behind.find((rank) => !caughtUp.includes(rank));
    if (missed !== undefined)
      throw this.membership.lostError(missed) ?? new UserError(`rank ${missed} did not adopt step ${step}`);
  }

  /**
   * Replacements that joined after a loss and loaded the job enter at a step boundary: the first live
   * rank saves its state (weights, optimizer moments, step) into `dir`, each replacement adopts it, and the
   * ring is re-formed with them. A replacement that fails on the way is lost; the job goes on without it.
   */
  async admitReplacements(dir: string, seed: number, timeoutMs: number): Promise<void> {
    const writer = this.writer;
    if (writer === undefined) return;
    const options = { minWorkers: 1, replacementTimeoutMs: 0, handoffDir: dir, seed, timeoutMs };
    const ready = await this.handOver(writer, this.completed, this.takeReplacements(), options);
    if (ready.length > 0) await this.recover(options, ready);
  }

  /** The live replacements waiting to enter the ring, taken off the waiting list. */
  private takeReplacements(): number[] {
    const waiting = [...this.replacements].filter((rank) => this.membership.isLive(rank));
    this.replacements.clear();
    return waiting;
  }

  /**
   * `writer` saves its state (`step` steps) through the handoff directory and each of `ranks` adopts it;
   * returns those that did (one that does not answer in time is lost, as hung).
   */
  private async handOver(
    writer: number,
    step: number,
    ranks: readonly number[],
    options: RecoveryOptions,
  ): Promise<number[]> {
    if (ranks.length === 0) return [];
    const dir = options.handoffDir;
    this.log(
      `ranks ${ranks.join(",")}: handing over the state of rank ${writer} at step ${step} through ${dir}`,
    );
    const saved = await this.requests.checkpoint(writer, step, { dir, seed: options.seed, keep: 1 });
    const adopted = this.requests.request(
      "adopted",
      step,
      new Set(ranks),
      "adopting the job's state",
      "lose",
    );
    this.requests.sendUntilAnswered(adopted, () => ({ type: "adopt", dir, step }));
    await adopted.done.catch(() => undefined);
    const ready = ranks.filter((rank) => adopted.replies.has(rank));
    if (ready.length > 0)
      this.log(`ranks ${ready.join(",")} adopted the state of step ${step} (rank ${saved.rank}'s)`);
    return ready;
  }

  /**
   * Fewer than --min-workers are live (their step aborted, all at the job's step): wait for replacements
   * to join and load the job, up to --replacement-timeout-ms, and hand them the live ranks' state. Returns
   * the members of the new ring; a live rank lost meanwhile fails the wait (recovery tries again without it).
   */
  private async awaitReplacements(live: readonly number[], options: RecoveryOptions): Promise<number[]> {
    const { minWorkers, replacementTimeoutMs } = options;
    this.enter("awaiting-replacements");
    const deadline = Date.now() + replacementTimeoutMs;
    let members = [...live];
    this.log(
      `recovery: ${members.length} live workers, fewer than --min-workers ${minWorkers}: waiting up to ${replacementTimeoutMs / 1000} s for ${minWorkers - members.length} replacements (imtrain worker --job ${this.job})`,
    );
    while (members.length < minWorkers) {
      const lost = members.find((rank) => !this.membership.isLive(rank));
      if (lost !== undefined) throw this.membership.lostError(lost) ?? new UserError(`rank ${lost} was lost`);
      const waiting = [...this.replacements].filter((rank) => this.membership.isLive(rank));
      if (members.length + waiting.length >= minWorkers) {
        const writer = members[0] ?? -1;
        members = [
          ...members,
          ...(await this.handOver(writer, this.completed, this.takeReplacements(), options)),
        ];
        continue;
      }
      if (Date.now() > deadline)
        throw new UserError(
          `${members.length} live workers is fewer than --min-workers ${minWorkers}, and no replacement came within ${replacementTimeoutMs} ms (--replacement-timeout-ms)`,
        );
      await new Promise((resolve) => setTimeout(resolve, REPLACEMENT_POLL_MS));
    }
    return members;
  }

  /**
   * After a failure mid-step: the live ranks drop the unfinished step and report how many steps they
   * have applied, and one of the furthest saves. Ranks can differ by one: when an exchange's last message
   * is lost, the ranks that received everything applied the step (all with the same bits) and the rest
   * did not; both states are true states of the run, so the later one is kept. Returns what was saved.
   */
  async salvage(dir: string, seed: number, timeoutMs: number): Promise<Salvaged> {
    const live = this.membership.liveRanks();
    if (live.length === 0) throw new UserError("no live worker left to save a checkpoint");
    // Whoever answers in time can save; the rest are lost.
    const answered = await this.requests.abortStep(
      live,
      timeoutMs,
      "the job is stopping: saving what it has",
    );
    const replies = [...answered.entries()].sort(([a], [b]) => a - b);
    if (replies.length === 0)
      throw new UserError(`no live worker confirmed the abort within ${timeoutMs} ms`);
    const furthest = Math.max(...replies.map(([, m]) => m.completedSteps));
    const steps = new Set(replies.map(([, m]) => m.completedSteps));
    if (furthest - Math.min(...steps) > 1)
      throw new UserError(`live workers are more than one step apart (${[...steps].join(", ")}); not saving`);
    const writer = replies.find(([, m]) => m.completedSteps === furthest)?.[0] ?? 0;
    const saved = await this.requests.checkpoint(writer, furthest, { dir, seed, keep: this.keepCheckpoints });
    const checkpoint = { step: furthest, checkpoint_s: saved.seconds, rank: saved.rank };
    // The state saved includes a step the job never recorded: hand its result over so it is.
    const interrupted = this.interrupted;
    const applied =
      furthest > this.completed && interrupted?.step === this.completed ? interrupted : undefined;
    return applied ? { checkpoint, applied } : { checkpoint };
  }
}
