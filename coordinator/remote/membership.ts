// Who the job's workers are: admission (join → welcome, idempotent by the worker's nonce, so a retried
// join whose reply was lost gets the same rank), what each was last heard from, and which are lost.
// Losing a rank is reported once, to the metrics and to whoever waits on it.
import type { Log } from "../../shared/data/load.js";
import type { DropReason } from "../../shared/metrics/process-metrics.js";
import {
  PROTOCOL_VERSION,
  ProtocolError,
  decodeWorkerMessage,
  type CoordinatorMessage,
  type JobSpec,
  type WorkerMessage,
} from "../../shared/protocol.js";
import { WorkerLostError } from "./errors.js";

/** What membership reports as it happens (the job's metrics listen). */
export interface MembershipEvents {
  /** `count` workers have joined so far. */
  joined(count: number): void;
  lost(rank: number): void;
  dropped(reason: DropReason): void;
}

export const NO_EVENTS: MembershipEvents = { joined: () => {}, lost: () => {}, dropped: () => {} };

export interface Member {
  readonly name: string;
  readonly host: string;
  readonly nonce: string;
  lastSeenMs: number;
  dataPlaneAddress?: string;
}

export class Membership {
  readonly members: Member[] = [];
  private readonly lost = new Map<number, WorkerLostError>();
  private readonly lostListeners: ((error: WorkerLostError) => void)[] = [];

  constructor(
    private readonly job: string,
    private readonly workers: number,
    private readonly spec: JobSpec,
    private readonly events: MembershipEvents,
    private readonly log: Log,
  ) {}

  /** The reply to a join request. */
  join(bytes: Uint8Array, subject: string): CoordinatorMessage {
    let message: WorkerMessage;
    try {
      message = decodeWorkerMessage(bytes, subject);
    } catch (error) {
      this.log(`refused a join: ${(error as Error).message}`);
      this.events.dropped(error instanceof ProtocolError ? error.kind : "malformed");
      return { type: "reject", reason: (error as Error).message };
    }
    if (message.type !== "join") {
      this.log(`refused a join: expected join, got ${message.type}`);
      this.events.dropped("malformed");
      return { type: "reject", reason: `expected join, got ${message.type}` };
    }
    if (message.protocol !== PROTOCOL_VERSION) {
      return {
        type: "reject",
        reason: `protocol ${message.protocol} does not match the coordinator's ${PROTOCOL_VERSION}; run the same imtrain version everywhere`,
      };
    }
    const known = this.members.findIndex((member) => member.nonce === message.nonce);
    if (known >= 0) {
      this.log(`worker ${message.name} asked to join again (its welcome was lost?): rank ${known} again`);
      return this.welcome(known);
    }
    // Once running, a worker may join to replace a lost one (then it is given the live ranks' state).
    if (this.liveRanks().length >= this.workers) {
      return { type: "reject", reason: `job ${this.job} already has its ${this.workers} workers` };
    }
    const rank = this.members.length;
    this.members.push({
      name: message.name,
      host: message.host,
      nonce: message.nonce,
      lastSeenMs: Date.now(),
    });
    this.events.joined(this.members.length);
    this.log(
      `worker ${message.name} (${message.host}, pid ${message.pid}, ${message.device}) joined as rank ${rank}`,
    );
    return this.welcome(rank);
  }

  private welcome(rank: number): CoordinatorMessage {
    return { type: "welcome", rank, worldSize: this.workers, job: this.spec };
  }

  nameOf(rank: number): string {
    return this.members[rank]?.name ?? `#${rank}`;
  }

  /** The member a message claims to come from, marked as heard from now; undefined (and counted) if none. */
  heardFrom(rank: number, type: string): Member | undefined {
    const member = this.members[rank];
    if (member === undefined) {
      this.log(`ignored ${type} from unknown rank ${rank}`);
      this.events.dropped("unknown_rank");
      return undefined;
    }
    member.lastSeenMs = Date.now();
    return member;
  }

  lostError(rank: number): WorkerLostError | undefined {
    return this.lost.get(rank);
  }

  /** Why each lost worker was lost, in rank order. */
  lostErrors(): WorkerLostError[] {
    return [...this.lost].sort(([a], [b]) => a - b).map(([, error]) => error);
  }

  isLive(rank: number): boolean {
    return rank < this.members.length && !this.lost.has(rank);
  }

  liveRanks(): number[] {
    return this.members.map((_, rank) => rank).filter((rank) => !this.lost.has(rank));
  }

  onLost(listener: (error: WorkerLostError) => void): void {
    this.lostListeners.push(listener);
  }

  markLost(rank: number, reason: string): void {
    if (this.lost.has(rank)) return;
    const error = new WorkerLostError(rank, this.nameOf(rank), reason);
    this.lost.set(rank, error);
    this.log(error.message);
    this.events.lost(rank);
    for (const listener of this.lostListeners) listener(error);
  }
}
