// `imtrain launch`: one node, like torchrun. Finds a NATS server (given URL, else a nats-server from the
// PATH on a free loopback port, else an in-process broker), starts a coordinator and N workers as child
// processes, prefixes their logs, forwards SIGTERM to the coordinator (which drains the workers), and
// exits with the coordinator's status. With metrics, each process gets its own port and the run
// directory gets a Prometheus file_sd list of them (deploy/prometheus/prometheus.yml reads it).
import { spawn, type ChildProcess } from "node:child_process";
import type { Log } from "../shared/data/load.js";
import { scrapeHost, writeMetricsTargets } from "./metrics-targets.js";
import { EmbeddedNatsServer } from "./nats/embedded-server.js";
import { findNatsServer, startNatsServerProcess } from "./nats/server-process.js";

export interface LaunchOptions {
  readonly cliPath: string;
  readonly workers: number;
  /** A NATS URL to use (--nats or $NATS_URL); undefined = start one; "embedded" = the in-process bus. */
  readonly natsUrl: string | undefined;
  /** Arguments for the coordinator (train and coordinator flags, without --nats). */
  readonly coordinatorArgs: readonly string[];
  readonly job: string;
  /** "cpu", or "gpu" to give worker i the device gpu:i. */
  readonly devices: "cpu" | "gpu";
  /** How long workers get to exit after the coordinator has. */
  readonly workerGraceMs: number;
  /** Pass the coordinator's summary line (its stdout) through. */
  readonly printSummary: boolean;
  /** Where the coordinator writes the run (for the metrics targets file). */
  readonly outDir: string;
  readonly metrics?: LaunchMetrics;
}

export interface LaunchMetrics {
  readonly host: string;
  readonly coordinatorPort: number;
  /** Worker r's port at index r. */
  readonly workerPorts: readonly number[];
  readonly peakTflops: number | undefined;
  /** --metrics-linger-s for every process. */
  readonly lingerS: number;
}

function metricsArgs(metrics: LaunchMetrics, port: number): string[] {
  return [
    "--metrics-port",
    String(port),
    "--metrics-host",
    metrics.host,
    "--metrics-linger-s",
    String(metrics.lingerS),
  ];
}

interface Bus {
  readonly url: string;
  stop(): Promise<void>;
}

async function startBus(options: LaunchOptions, log: Log): Promise<Bus> {
  if (options.natsUrl !== undefined && options.natsUrl !== "embedded")
    return { url: options.natsUrl, stop: async () => {} };
  const binary = options.natsUrl === "embedded" ? undefined : findNatsServer();
  if (binary !== undefined) {
    const server = await startNatsServerProcess(binary);
    log(`launch: started ${binary} at ${server.url}`);
    return server;
  }
  const embedded = await EmbeddedNatsServer.start();
  const why = options.natsUrl === "embedded" ? "--nats embedded" : "no nats-server on the PATH";
  log(`launch: ${why}: using the in-process NATS bus at ${embedded.url}`);
  return { url: embedded.url, stop: () => embedded.close() };
}

/** Pipes a child's stderr line by line with a prefix; its stdout passes through untouched if asked. */
function run(cliPath: string, args: readonly string[], prefix: string, passStdout: boolean): ChildProcess {
  const child = spawn(process.execPath, [cliPath, ...args], {
    stdio: ["ignore", passStdout ? "inherit" : "ignore", "pipe"],
  });
  let pending = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    const lines = (pending + chunk.toString()).split("\n");
    pending = lines.pop() ?? "";
    for (const line of lines) process.stderr.write(`[${prefix}] ${line.replace(/\r/g, "")}\n`);
  });
  child.stderr?.on("end", () => pending && process.stderr.write(`[${prefix}] ${pending}\n`));
  return child;
}

function exited(child: ChildProcess): Promise<number> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 128 : 1))));
}

export async function launch(options: LaunchOptions, log: Log, signal: AbortSignal): Promise<number> {
  const bus = await startBus(options, log);
  const { metrics } = options;
  if (metrics) {
    const host = scrapeHost(metrics.host);
    const urls = metrics.workerPorts.map((port, r) => `w${r} http://${host}:${port}/metrics`);
    log(
      `launch: metrics at coordinator http://${host}:${metrics.coordinatorPort}/metrics, ${urls.join(", ")}`,
    );
    const ports = [metrics.coordinatorPort, ...metrics.workerPorts];
    log(`launch: Prometheus targets in ${writeMetricsTargets(options.outDir, metrics.host, ports)}`);
  }
  try {
    const coordinator = run(
      options.cliPath,
      [
        "coordinator",
        "--nats",
        bus.url,
        ...options.coordinatorArgs,
        ...(metrics ? metricsArgs(metrics, metrics.coordinatorPort) : []),
      ],
      "coordinator",
      options.printSummary,
    );
    const workers = Array.from({ length: options.workers }, (_, i) =>
      run(
        options.cliPath,
        [
          "worker",
          "--nats",
          bus.url,
          "--job",
          options.job,
          "--name",
          `w${i}`,
          "--device",
          options.devices === "gpu" ? `gpu:${i}` : "cpu",
          ...(metrics ? metricsArgs(metrics, metrics.workerPorts[i] ?? 0) : []),
          ...(metrics?.peakTflops === undefined ? [] : ["--peak-tflops", String(metrics.peakTflops)]),
        ],
        `w${i}`,
        false,
      ),
    );
    signal.addEventListener("abort", () => coordinator.kill("SIGTERM"), { once: true });
    const status = await exited(coordinator);
    // The coordinator shuts its workers down; give them a moment, then make sure.
    const deadline = setTimeout(
      () => workers.forEach((w) => w.exitCode === null && w.kill("SIGKILL")),
      options.workerGraceMs,
    );
    const workerStatuses = await Promise.all(workers.map(exited));
    clearTimeout(deadline);
    const failed = workerStatuses.filter((s) => s !== 0).length;
    if (failed > 0) log(`launch: ${failed} of ${options.workers} workers exited with an error`);
    return status;
  } finally {
    await bus.stop();
  }
}
