// Metrics flags compiled once: where to serve /metrics and /healthz, and a rank's peak for MFU.
import { OptionError } from "../errors.js";

export interface MetricsFlags {
  metricsPort?: number | undefined;
  metricsHost: string;
  peakTflops?: number | undefined;
  metricsLingerS?: number | undefined;
}

export interface MetricsOptions {
  /** undefined: no endpoint (and no Prometheus registry at all); 0: a free port. */
  readonly port: number | undefined;
  readonly host: string;
  /** The rank's peak in TFLOP/s, if the user knows it better than the table or a measurement. */
  readonly peakTflops: number | undefined;
  /** How long /metrics stays up after the job ends, so a final scrape sees how it ended. */
  readonly lingerMs: number;
}

/** No endpoint: what library callers and tests get unless they ask. */
export const METRICS_OFF: MetricsOptions = {
  port: undefined,
  host: "127.0.0.1",
  peakTflops: undefined,
  lingerMs: 0,
};

export function compileMetricsOptions(flags: MetricsFlags): MetricsOptions {
  const port = flags.metricsPort;
  if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535))
    throw new OptionError("metrics-port", `must be an integer port in [0, 65535] (got ${port})`);
  const peak = flags.peakTflops;
  if (peak !== undefined && !(Number.isFinite(peak) && peak > 0))
    throw new OptionError("peak-tflops", `must be a positive number of TFLOP/s (got ${peak})`);
  if (!flags.metricsHost) throw new OptionError("metrics-host", "must name an address to listen on");
  const linger = flags.metricsLingerS ?? 0;
  if (!(Number.isFinite(linger) && linger >= 0 && linger <= 3600))
    throw new OptionError("metrics-linger-s", `must be seconds in [0, 3600] (got ${linger})`);
  return { port, host: flags.metricsHost, peakTflops: peak, lingerMs: linger * 1000 };
}
