// What a worker's main thread and its heartbeat thread (heartbeat-thread.ts) say to each other.
export interface HeartbeatThreadInput {
  readonly natsUrl: string;
  /** The coordinator's subject. */
  readonly subject: string;
  readonly rank: number;
  readonly periodMs: number;
  /** The worker's name, for the connection's name. */
  readonly name: string;
}

export type HeartbeatThreadMessage =
  { readonly type: "started" } | { readonly type: "failed"; readonly message: string };
