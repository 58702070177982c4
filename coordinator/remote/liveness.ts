// Liveness both ways: the coordinator pings every worker each heartbeat period (so a worker notices a
// coordinator that is gone), and a worker silent for longer than the worker timeout is lost. Silence is
// judged from the last message of any kind, heartbeats included.
import type { CoordinatorMessage } from "../../shared/protocol.js";
import type { Membership } from "./membership.js";

export interface LivenessOptions {
  readonly heartbeatMs: number;
  /** A worker silent this long is lost; it must exceed the longest step's compute. */
  readonly workerTimeoutMs: number;
}

export function watchLiveness(
  membership: Membership,
  options: LivenessOptions,
  send: (rank: number, message: CoordinatorMessage) => void,
): () => void {
  const period = Math.max(50, Math.min(1000, options.workerTimeoutMs / 4));
  let lastPingMs = 0;
  const timer = setInterval(() => {
    const now = Date.now();
    if (now - lastPingMs >= options.heartbeatMs) {
      lastPingMs = now;
      for (const rank of membership.liveRanks()) send(rank, { type: "alive" });
    }
    for (const rank of membership.liveRanks()) {
      const silentMs = now - (membership.members[rank]?.lastSeenMs ?? now);
      if (silentMs > options.workerTimeoutMs)
        membership.markLost(rank, `went silent for ${Math.round(silentMs)} ms (lost?)`);
    }
  }, period);
  timer.unref();
  return () => clearInterval(timer);
}
