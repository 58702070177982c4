// What every imtrain process exports besides Node's defaults: who it is (build info) and the messages it
// dropped. Dropped messages are counted by a fixed set of reasons, each started at 0 so rate() and alerts
// work from the first scrape.
import { Counter, Gauge, type Registry } from "prom-client";
import type { SelectedBackend } from "../backend/select.js";
import { adapterLabel } from "../backend/adapter.js";

/** malformed (fails the protocol's schema), oversized, forbidden (valid, but names a path outside the run
 * directory), from an unknown rank, unexpected (late, duplicated or stale control message); ring chunks:
 * duplicate (a second copy), stale (of a finished exchange), abandoned (of a failed one). */
export const DROP_REASONS = [
  "malformed",
  "oversized",
  "forbidden",
  "unknown_rank",
  "unexpected",
  "duplicate",
  "stale",
  "abandoned",
] as const;
export type DropReason = (typeof DROP_REASONS)[number];

export type ProcessRole = "train" | "coordinator" | "worker";

export interface BuildInfo {
  readonly version: string;
  /** The backend that runs (never "auto"); "" until selected, and on a coordinator. */
  readonly backend: string;
  /** cpu, gpu:K or gpu:software. */
  readonly device: string;
  /** webgpu's adapter: its name and driver description; "" on other backends. */
  readonly adapter: string;
  readonly model: string;
  readonly role: ProcessRole;
  /** "" until a worker has joined; "0" for train. */
  readonly rank: string;
}

/** The build-info labels that say what this process computes on. */
export function buildInfoOfBackend(
  selected: SelectedBackend,
): Pick<BuildInfo, "backend" | "device" | "adapter"> {
  return { backend: selected.name, device: selected.device, adapter: adapterLabel(selected.adapter) };
}

export class ProcessMetrics {
  private readonly buildInfo: Gauge<keyof BuildInfo>;
  private readonly deviceLimits: Gauge<"limit">;
  private readonly dropped: Counter<"reason">;
  private info: BuildInfo;

  constructor(registry: Registry, info: BuildInfo) {
    this.buildInfo = new Gauge({
      name: "imtrain_build_info",
      help: "Always 1; labels say which imtrain, backend, device, GPU adapter, model, role and rank this process is",
      labelNames: ["version", "backend", "device", "adapter", "model", "role", "rank"],
      registers: [registry],
    });
    this.deviceLimits = new Gauge({
      name: "imtrain_device_limit_bytes",
      help: "The GPU adapter's buffer limits (webgpu): max_storage_buffer_binding_size, max_buffer_size",
      labelNames: ["limit"],
      registers: [registry],
    });
    this.dropped = new Counter({
      name: "imtrain_messages_dropped_total",
      help: "Incoming messages dropped (each also logged), by reason",
      labelNames: ["reason"],
      registers: [registry],
    });
    for (const reason of DROP_REASONS) this.dropped.inc({ reason }, 0);
    this.info = info;
    this.buildInfo.set({ ...info }, 1);
  }

  /** Updates build info (a worker learns its rank and backend after it starts). */
  update(change: Partial<BuildInfo>): void {
    this.buildInfo.remove({ ...this.info });
    this.info = { ...this.info, ...change };
    this.buildInfo.set({ ...this.info }, 1);
  }

  /** Says what this process computes on: build-info labels, and the adapter's limits where there is one. */
  backendSelected(selected: SelectedBackend): void {
    this.update(buildInfoOfBackend(selected));
    const { adapter } = selected;
    if (adapter === undefined) return;
    this.deviceLimits.set({ limit: "max_storage_buffer_binding_size" }, adapter.maxStorageBufferBindingSize);
    this.deviceLimits.set({ limit: "max_buffer_size" }, adapter.maxBufferSize);
  }

  messageDropped(reason: DropReason): void {
    this.dropped.inc({ reason });
  }
}
