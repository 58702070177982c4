// What a worker's main thread and its heartbeat thread (heartbeat-thread.ts) say to each other.
import type { NatsConnectionSettings } from "../shared/nats/settings.js";

export interface HeartbeatThreadInput {
  /** Plain data (a thread gets a structured clone): the thread builds its authenticator from it. */
  readonly nats: NatsConnectionSettings;
  /** The coordinator's subject. */
  readonly subject: string;
  readonly rank: number;
  readonly periodMs: number;
  /** The worker's name, for the connection's name. */
  readonly name: string;
}

export type HeartbeatThreadMessage =
  { readonly type: "started" } | { readonly type: "failed"; readonly message: string };
