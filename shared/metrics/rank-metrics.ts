// What one rank exports from its own process: its peak FLOP/s (for MFU), its all-reduce traffic and time
// by data plane, and tfjs's live tensors and bytes (flat over a run, or a leak). Values are set from
// figures the step already has; nothing here runs on a scrape.
import * as tf from "@tensorflow/tfjs-core";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { PeakFlops } from "./peak-flops.js";
import { SECONDS_BUCKETS } from "./registry.js";

export class RankMetrics {
  private readonly peak: Gauge<"rank" | "source">;
  private readonly bytesSent: Counter<"rank" | "plane">;
  private readonly bytesReceived: Counter<"rank" | "plane">;
  private readonly allReduceSeconds: Histogram<"rank" | "plane">;
  private readonly tensors: Gauge<"rank">;
  private readonly tensorBytes: Gauge<"rank">;
  private rank = "";

  constructor(registry: Registry) {
    const registers = [registry];
    this.peak = new Gauge({
      name: "imtrain_peak_flops_per_second",
      help: "This rank's peak FLOP/s: --peak-tflops, a known GPU's data-sheet figure, or the measured matmul ceiling (source label)",
      labelNames: ["rank", "source"],
      registers,
    });
    this.bytesSent = new Counter({
      name: "imtrain_allreduce_bytes_sent_total",
      help: "Bytes this rank sent in all-reduces (encoded ring messages), by data plane",
      labelNames: ["rank", "plane"],
      registers,
    });
    this.bytesReceived = new Counter({
      name: "imtrain_allreduce_bytes_received_total",
      help: "Bytes this rank received in all-reduces (encoded ring messages), by data plane",
      labelNames: ["rank", "plane"],
      registers,
    });
    this.allReduceSeconds = new Histogram({
      name: "imtrain_allreduce_seconds",
      help: "Seconds per all-reduce of a step's buffer, including time blocked on slower ranks",
      labelNames: ["rank", "plane"],
      buckets: SECONDS_BUCKETS,
      registers,
    });
    this.tensors = new Gauge({
      name: "imtrain_tensors",
      help: "Live tfjs tensors on this rank after its last step",
      labelNames: ["rank"],
      registers,
    });
    this.tensorBytes = new Gauge({
      name: "imtrain_tensor_bytes",
      help: "Bytes held by live tfjs tensors on this rank after its last step",
      labelNames: ["rank"],
      registers,
    });
  }

  /** Called once the rank is known; series appear from then on. */
  start(rank: number, peak: PeakFlops): void {
    this.rank = String(rank);
    this.peak.set({ rank: this.rank, source: peak.source }, peak.flopsPerSecond);
    this.recordMemory();
  }

  /** Starts the plane's series at 0, so rates exist before the first all-reduce ends. */
  plane(plane: string): void {
    this.bytesSent.inc({ rank: this.rank, plane }, 0);
    this.bytesReceived.inc({ rank: this.rank, plane }, 0);
  }

  sent(plane: string, bytes: number): void {
    this.bytesSent.inc({ rank: this.rank, plane }, bytes);
  }

  received(plane: string, bytes: number): void {
    this.bytesReceived.inc({ rank: this.rank, plane }, bytes);
  }

  allReduced(plane: string, seconds: number): void {
    this.allReduceSeconds.observe({ rank: this.rank, plane }, seconds);
  }

  /** tf.memory() reads counters tfjs keeps; cheap enough for every step. */
  recordMemory(): void {
    const memory = tf.memory();
    this.tensors.set({ rank: this.rank }, memory.numTensors);
    this.tensorBytes.set({ rank: this.rank }, memory.numBytes);
  }
}
