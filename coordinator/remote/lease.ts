// One coordinator per job. Core NATS has no atomic "create if absent" (JetStream's KV has, but neither the
// in-process bus nor a plain nats-server runs JetStream), so the claim is a protocol on the job's lease
// subject: the holder answers requests there with who it is. A new coordinator
//   1. asks: any answer means the job has a coordinator, and this one is refused;
//   2. subscribes, then asks again and collects every answer for a moment: two coordinators that started
//      together both see each other, and the later start (ties: the larger id) steps down.
// Two answers can only both be missed if a message is lost in the few milliseconds of step 2.
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { NatsConnection, Subscription } from "nats";
import { UserError } from "../../shared/errors.js";
import { decodeLeaseClaim, encodeMessage, jobSubjects, type LeaseClaim } from "../../shared/protocol.js";

const ASK_TIMEOUT_MS = 500;
const COLLECT_MS = 300;

/** The job already has a coordinator. */
export class JobTakenError extends UserError {
  override readonly name = "JobTakenError";
  constructor(
    readonly job: string,
    readonly holder: LeaseClaim,
  ) {
    super(
      `job "${job}" already has a coordinator (${holder.host}, pid ${holder.pid}, since ${new Date(holder.startedAtMs).toISOString()}): stop it, or give this one another --job`,
    );
  }
}

export interface Lease {
  release(): void;
}

function earlier(a: LeaseClaim, b: LeaseClaim): boolean {
  return a.startedAtMs < b.startedAtMs || (a.startedAtMs === b.startedAtMs && a.id < b.id);
}

async function answers(
  nc: NatsConnection,
  subject: string,
  ask: Uint8Array,
  self: string,
): Promise<LeaseClaim[]> {
  const found: LeaseClaim[] = [];
  const replies = await nc.requestMany(subject, ask, { maxWait: COLLECT_MS });
  for await (const reply of replies) {
    try {
      const claim = decodeLeaseClaim(reply.data, subject);
      if (claim.id !== self) found.push(claim);
    } catch {
      // Not a lease holder's answer (e.g. a no-responders status): nobody holds it.
    }
  }
  return found;
}

export async function claimJob(nc: NatsConnection, job: string): Promise<Lease> {
  const subject = jobSubjects(job).lease;
  const self: LeaseClaim = {
    type: "lease",
    host: hostname(),
    pid: process.pid,
    startedAtMs: Date.now(),
    id: randomUUID(),
  };
  const ask = encodeMessage(self);
  try {
    const reply = await nc.request(subject, ask, { timeout: ASK_TIMEOUT_MS });
    throw new JobTakenError(job, decodeLeaseClaim(reply.data, subject));
  } catch (error) {
    if (error instanceof UserError) throw error;
    // No responders, or no answer in time: nobody holds the lease (yet).
  }
  const subscription: Subscription = nc.subscribe(subject, { callback: (_, msg) => msg.respond(ask) });
  await nc.flush();
  const rivals = await answers(nc, subject, ask, self.id);
  const holder = rivals.find((rival) => earlier(rival, self));
  if (holder) {
    subscription.unsubscribe();
    throw new JobTakenError(job, holder);
  }
  return { release: () => subscription.unsubscribe() };
}
