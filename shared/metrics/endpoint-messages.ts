// What the main thread and the metrics endpoint's thread (endpoint-thread.ts) say to each other.
import type { HealthState } from "./health.js";

export interface EndpointThreadInput {
  readonly host: string;
  readonly port: number;
}

/** Main thread → endpoint thread. */
export type EndpointThreadMessage =
  | { readonly type: "snapshot"; readonly text: string; readonly contentType: string }
  /** Collecting the registry threw: scrapes get a 500 with this, so the scrape error shows in Prometheus. */
  | { readonly type: "collectFailed"; readonly message: string }
  | ({ readonly type: "health" } & { readonly status: HealthState["status"]; readonly reason: string })
  | { readonly type: "close" };

/** Endpoint thread → main thread. */
export type MainThreadMessage =
  | { readonly type: "listening"; readonly port: number }
  | { readonly type: "failed"; readonly code: string; readonly message: string }
  /** A scrape arrived: send a snapshot if you can. */
  | { readonly type: "collect" };
