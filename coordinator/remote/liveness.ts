// Liveness both ways: the coordinator pings every worker each heartbeat period (so a worker notices a
// coordinator that is gone), and a worker silent for longer than the heartbeat timeout is lost. Workers
// send heartbeats from a thread of their own (worker/heartbeat-thread.ts), so a long synchronous step
// does not silence them: silence means the process or its network is gone. Judged from the last message
// of any kind. While this process is cut off from NATS nobody can be heard, so nobody is judged: the
// watch pauses, and resumes with a fresh grace period for everyone once the connection is back.
import type { CoordinatorMessage } from "../../shared/protocol.js";
import type { Membership } from "./membership.js";

export interface LivenessOptions {
  readonly heartbeatMs: number;
  /** A worker silent this long is lost. */
  readonly heartbeatTimeoutMs: number;
}

export interface LivenessWatch {
  /** This process lost its NATS connection: judge nobody until `resume`. */
  pause(): void;
  /** Connected again: everyone gets a fresh heartbeat timeout. */
  resume(): void;
  stop(): void;
}

export function watchLiveness(
  membership: Membership,
  options: LivenessOptions,
  send: (rank: number, message: CoordinatorMessage) => void,
): LivenessWatch {
  let paused = false;
  const period = Math.max(50, Math.min(1000, options.heartbeatTimeoutMs / 4));
  let lastPingMs = 0;
  let lastTickMs = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - lastPingMs >= options.heartbeatMs) {
      lastPingMs = now;
      for (const rank of membership.liveRanks()) send(rank, { type: "alive" });
    }
    // A late tick means this process was starved, and Node runs timers before reading the sockets: the
    // heartbeats that arrived meanwhile are still unread. Judge on the next, on-time tick instead.
    const late = now - lastTickMs > 2 * period;
    lastTickMs = now;
    if (late || paused) return;
    for (const rank of membership.liveRanks()) {
      const silentMs = now - (membership.members[rank]?.lastSeenMs ?? now);
      if (silentMs > options.heartbeatTimeoutMs)
        membership.markLost(
          rank,
          `sent no heartbeat for ${Math.round(silentMs)} ms (process or network gone)`,
        );
    }
  }, period);
  timer.unref();
  return {
    pause: () => {
      paused = true;
    },
    resume: () => {
      const now = Date.now();
      for (const member of membership.members) member.lastSeenMs = Math.max(member.lastSeenMs, now);
      paused = false;
    },
    stop: () => clearInterval(timer),
  };
}
