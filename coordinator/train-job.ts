// `imtrain train`: the job in one process — one rank, no network. With --metrics-port it serves the
// job's and the rank's metrics from one registry (rank "0").
import { basename, resolve } from "node:path";
import { defaultTrainDevice, type Device } from "../shared/backend/device.js";
import { checkWebGpuLimits, longestInput } from "../shared/backend/limits.js";
import { describeBackend, selectBackend } from "../shared/backend/select.js";
import type { Log } from "../shared/data/load.js";
import { METRICS_OFF, type MetricsOptions } from "../shared/metrics/options.js";
import { resolvePeakFlops } from "../shared/metrics/peak-flops.js";
import { buildInfoOfBackend } from "../shared/metrics/process-metrics.js";
import { RankMetrics } from "../shared/metrics/rank-metrics.js";
import { serveMetrics } from "../shared/metrics/serve.js";
import type { TrainOptions } from "../shared/options.js";
import { prepareRun } from "../shared/train/prepare.js";
import { IMTRAIN_VERSION } from "../shared/version.js";
import { Rank } from "../worker/rank.js";
import { runJob, type JobControl, type JobSummary } from "./job.js";
import { JobMetrics } from "./job-metrics.js";
import { LocalRanks } from "./local-ranks.js";
import { writeMetricsTargets } from "./metrics-targets.js";

/** The `job` label of a `train` run: its run directory's name (`--out runs/dolly-im` → "dolly-im"). */
export function trainJobName(outDir: string): string {
  return basename(resolve(outDir));
}

export async function runTrainJob(
  options: TrainOptions,
  log: Log,
  control: Omit<JobControl, "metrics"> = {},
  metricsOptions: MetricsOptions = METRICS_OFF,
  device: Device = defaultTrainDevice(options.backend),
): Promise<JobSummary> {
  const served = await serveMetrics(
    metricsOptions,
    trainJobName(options.outDir),
    {
      version: IMTRAIN_VERSION,
      backend: "",
      device: "",
      adapter: "",
      model: options.model,
      role: "train",
      rank: "0",
    },
    log,
  );
  const jobMetrics = served && new JobMetrics(served.registry, served.process);
  if (served) log(`Prometheus targets in ${writeMetricsTargets(options.outDir, served.host, [served.port])}`);
  control.signal?.addEventListener("abort", () => served?.health.stopping("stop requested (signal)"), {
    once: true,
  });
  let ranks: LocalRanks | undefined;
  try {
    const backend = await selectBackend(options.backend, device);
    log(describeBackend(backend));
    served?.process.backendSelected(backend);
    const run = await prepareRun(options, log);
    if (backend.adapter) {
      const longest = longestInput([run.train, run.heldOut, run.trainEval]);
      checkWebGpuLimits(backend.adapter, run.model.config, options.microBatchSize, longest);
    }
    const rankMetrics = served && new RankMetrics(served.registry);
    if (rankMetrics) {
      const peak = await resolvePeakFlops(metricsOptions.peakTflops, backend.device);
      log(`peak ${(peak.flopsPerSecond / 1e12).toPrecision(3)} TFLOP/s (${peak.source}: ${peak.of})`);
      rankMetrics.start(0, peak);
    }
    ranks = new LocalRanks(new Rank(options, run), rankMetrics);
    jobMetrics?.joined(1);
    jobMetrics?.enter("running");
    const compute = buildInfoOfBackend(backend);
    const summary = await runJob(options, run, ranks, () => compute, log, {
      ...control,
      metrics: jobMetrics,
    });
    jobMetrics?.enter("stopped");
    served?.health.stopping("job finished");
    return summary;
  } catch (error) {
    jobMetrics?.enter("failed");
    served?.health.failed((error as Error).message);
    throw error;
  } finally {
    await ranks?.close();
    await served?.close();
  }
}
