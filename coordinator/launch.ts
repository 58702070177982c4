// `imtrain launch`: one node, like torchrun. Finds a NATS server (given URL, else a nats-server from the
// PATH on a free loopback port, else an in-process broker), starts a coordinator and a worker per local
// device as child processes, prefixes their logs, and exits when the job ends, whatever its children died
// of. On the other nodes of a job (no coordinator here) it starts only the workers, and exits when they do. With
// metrics, each process gets its own port and the run directory gets a Prometheus file_sd list of them
// (deploy/prometheus/prometheus.yml reads it). Its lifecycle, logged:
//
//   starting → running → stopping-workers → stopping-nats → exited
//                 ↘ draining (a signal: the coordinator finishes the step, checkpoints, stops the workers) ↗
//   (a second signal: everything is killed and launch exits at once)
//
// A nats-server launch starts admits only clients with its random token, which the children get in their
// environment, as they get credentials for a server given by URL: never on a command line, which ps shows.
//
// Every child and nats-server run in process groups of their own, so Ctrl-C or a SIGTERM to launch's
// group reaches launch alone, and each child is told exactly once what to do: a child that got the
// group's signal and then launch's would take the second as "exit now". NATS is stopped last, after
// everyone who talks over it has exited, so no one sees its connection drop in an orderly shutdown.
import type { Log } from "../shared/data/load.js";
import { checkNatsConnection } from "../shared/nats/connect.js";
import { childNatsEnvironment, type NatsConnectionSettings } from "../shared/nats/settings.js";
import type { ChildServerExit } from "./child-server.js";
import type { LaunchDeadlines } from "./launch-deadlines.js";
import { launchOutcome, workersOutcome, type EndedProcess } from "./launch-outcome.js";
import { describeEnd, exitStatus, LaunchedProcess, within, type ProcessEnd } from "./launched-process.js";
import { scrapeHost, writeMetricsTargets } from "./metrics-targets.js";
import { EmbeddedNatsServer } from "./nats/embedded-server.js";
import { findNatsServer, newServerToken, startNatsServerProcess } from "./nats/server-process.js";
import { constants } from "node:os";

export type LaunchState =
  "starting" | "running" | "draining" | "stopping-workers" | "stopping-nats" | "exited";

export interface LaunchOptions {
  readonly cliPath: string;
  /** One local worker per entry, on that device (cpu, gpu:K, gpu:software). */
  readonly workerDevices: readonly string[];
  /** Local workers' names: PREFIX0, PREFIX1, … (w0, w1, … on the coordinator's node). */
  readonly workerNamePrefix: string;
  /**
   * A NATS server to use (--nats or $NATS_URL, with its credentials); undefined = start one;
   * "embedded" = the in-process bus.
   */
  readonly nats: NatsConnectionSettings | "embedded" | undefined;
  /**
   * Arguments for the coordinator (train and coordinator flags, without --nats and its credentials);
   * undefined: the job's coordinator runs on another node, and only the workers start here.
   */
  readonly coordinatorArgs: readonly string[] | undefined;
  readonly job: string;
  readonly deadlines: LaunchDeadlines;
  /** Pass the coordinator's summary line (its stdout) through. */
  readonly printSummary: boolean;
  /** Where the coordinator writes the run (for the metrics targets file); undefined without a coordinator. */
  readonly outDir: string | undefined;
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

/** What the user asked for, by signal: the abort reason is the signal's name ("SIGINT"). */
export interface LaunchSignals {
  /** The first signal: drain the job (the step in flight, a checkpoint, then everyone exits). */
  readonly drain: AbortSignal;
  /** A second one: kill every child and nats-server, and return at once. */
  readonly kill: AbortSignal;
}

/** How long a SIGKILLed process may take to be reaped, and nats-server or the embedded bus to stop. */
const KILLED_EXIT_MS = 5_000;
const BUS_STOP_MS = 10_000;
/** How long to wait for a child's last log lines after it exited. */
const LAST_LINES_MS = 1_000;

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
  /** How the children connect to it. */
  readonly connection: NatsConnectionSettings;
  /** A nats-server launch started: settles when it exits. */
  readonly exit?: Promise<ChildServerExit>;
  stop(): Promise<void>;
  /** At once, without waiting (launch is about to exit). */
  kill(): void;
}

async function startBus(options: LaunchOptions, log: Log): Promise<Bus> {
  const { nats } = options;
  if (nats !== undefined && nats !== "embedded") {
    // Refused credentials or an untrusted certificate: one line from launch, not one from every child.
    await checkNatsConnection(nats, "imtrain-launch");
    return { connection: nats, stop: async () => {}, kill: () => {} };
  }
  const binary = nats === "embedded" ? undefined : findNatsServer();
  if (binary !== undefined) {
    const token = newServerToken();
    const server = await startNatsServerProcess(binary, {
      ownProcessGroup: true,
      killAfterMs: options.deadlines.killAfterMs,
      token,
    });
    log(`launch: started ${binary} (pid ${server.pid}) at ${server.url}`);
    const auth = { kind: "token", token, from: "launch's nats-server" } as const;
    return {
      connection: { url: server.url, auth, tls: undefined },
      exit: server.exit,
      stop: () => server.stop(),
      kill: () => server.kill(),
    };
  }
  // In-process and on loopback: nothing else shares it, so it asks for no credentials.
  const embedded = await EmbeddedNatsServer.start();
  const why = nats === "embedded" ? "--nats embedded" : "no nats-server on the PATH";
  log(`launch: ${why}: using the in-process NATS bus at ${embedded.url}`);
  return {
    connection: { url: embedded.url, auth: { kind: "none" }, tls: undefined },
    stop: () => embedded.close(),
    kill: () => void embedded.close(),
  };
}

function signalStatus(signal: unknown): number {
  return 128 + (constants.signals[signal as NodeJS.Signals] ?? 0);
}

/** Calls `then` once `signal` is aborted (at once if it already is). */
function onAbort(signal: AbortSignal, then: () => void): void {
  if (signal.aborted) then();
  else signal.addEventListener("abort", then, { once: true });
}

class Launch {
  private state: LaunchState = "starting";
  private bus: Bus | undefined;
  /** Settles when startBus has, so a kill during start-up can wait for a nats-server to kill. */
  private busStarted: Promise<unknown> = Promise.resolve();
  private coordinator: LaunchedProcess | undefined;
  private workers: LaunchedProcess[] = [];
  /** nats-server, had it died before launch stopped it. */
  private natsDied: EndedProcess | undefined;
  private readonly timers = new Set<NodeJS.Timeout>();

  constructor(
    private readonly options: LaunchOptions,
    private readonly log: Log,
    private readonly signals: LaunchSignals,
  ) {}

  /** Resolves with launch's exit status: when the job has ended, or at once on a second signal. */
  run(): Promise<number> {
    const killed = new Promise<number>((resolve) =>
      onAbort(this.signals.kill, () => resolve(this.killEverything(this.signals.kill.reason))),
    );
    const lifecycle = this.lifecycle()
      .catch(async (error: unknown) => {
        // Our own bug or a failed start: leave nothing running behind the error.
        this.killChildren();
        if (this.bus) await this.stopBus(this.bus);
        throw error;
      })
      .finally(() => this.clearTimers());
    return Promise.race([lifecycle, killed]);
  }

  private enter(state: LaunchState, why = ""): void {
    this.log(`launch: ${this.state} → ${state}${why === "" ? "" : ` (${why})`}`);
    this.state = state;
  }

  private async lifecycle(): Promise<number> {
    const starting = startBus(this.options, this.log);
    this.busStarted = starting.catch(() => undefined);
    const bus = await starting;
    this.bus = bus;
    if (this.signals.kill.aborted) {
      bus.kill();
      return signalStatus(this.signals.kill.reason);
    }
    if (this.signals.drain.aborted) {
      // Stopped before anything ran: nothing to drain.
      this.enter("stopping-nats", String(this.signals.drain.reason));
      await this.stopBus(bus);
      this.enter("exited", `status ${signalStatus(this.signals.drain.reason)}`);
      return signalStatus(this.signals.drain.reason);
    }
    this.logMetrics();
    const coordinator = this.spawnChildren(bus.connection);
    this.enter("running");
    onAbort(this.signals.drain, () => this.drain(String(this.signals.drain.reason)));
    for (const worker of this.workers) void worker.ended.then((end) => this.workerEnded(worker, end));
    void bus.exit?.then((exit) => this.natsExited(exit));

    if (coordinator) {
      const end = await coordinator.ended;
      this.clearTimers();
      this.enter("stopping-workers", `the coordinator ${describeEnd(end)}`);
      await this.stopWorkers(end);
    } else {
      // The job's coordinator is elsewhere: it tells these workers when the job ends.
      await Promise.all(this.workers.map((w) => w.ended));
      this.clearTimers();
    }
    const children = coordinator ? [coordinator, ...this.workers] : this.workers;
    await Promise.all(children.map((p) => p.settled(LAST_LINES_MS)));

    this.enter("stopping-nats");
    await this.stopBus(bus);
    const others = [
      ...this.workers.filter((w) => !w.running).map(ended),
      ...(this.natsDied ? [this.natsDied] : []),
    ];
    const outcome = coordinator ? launchOutcome(ended(coordinator), others) : workersOutcome(others);
    if (outcome.line !== undefined) this.log(outcome.line);
    this.enter("exited", `status ${outcome.status}`);
    return outcome.status;
  }

  /** Starts the coordinator (if it runs here) and the workers; returns the coordinator. */
  private spawnChildren(nats: NatsConnectionSettings): LaunchedProcess | undefined {
    const { options } = this;
    const { metrics } = options;
    const { url } = nats;
    const env = childNatsEnvironment(process.env, nats);
    const write = (text: string) => process.stderr.write(text);
    const coordinator =
      options.coordinatorArgs &&
      new LaunchedProcess({
        name: "coordinator",
        args: [
          options.cliPath,
          "coordinator",
          "--nats",
          url,
          ...options.coordinatorArgs,
          ...(metrics ? metricsArgs(metrics, metrics.coordinatorPort) : []),
        ],
        passStdout: options.printSummary,
        write,
        env,
      });
    this.coordinator = coordinator;
    this.workers = options.workerDevices.map(
      (device, i) =>
        new LaunchedProcess({
          name: `${options.workerNamePrefix}${i}`,
          args: [
            options.cliPath,
            "worker",
            "--nats",
            url,
            "--job",
            options.job,
            "--name",
            `${options.workerNamePrefix}${i}`,
            "--device",
            device,
            ...(metrics ? metricsArgs(metrics, metrics.workerPorts[i] ?? 0) : []),
            ...(metrics?.peakTflops === undefined ? [] : ["--peak-tflops", String(metrics.peakTflops)]),
          ],
          passStdout: false,
          write,
          env,
        }),
    );
    const pids = this.workers.map((w) => `${w.name} ${w.pid ?? "?"}`).join(", ");
    this.log(
      coordinator
        ? `launch: started the coordinator (pid ${coordinator.pid ?? "?"}) and workers (pids ${pids})`
        : `launch: started workers (pids ${pids}) for job ${options.job}'s coordinator at ${url}`,
    );
    return coordinator;
  }

  private logMetrics(): void {
    const { metrics } = this.options;
    if (!metrics) return;
    const host = scrapeHost(metrics.host);
    const { outDir, workerNamePrefix } = this.options;
    const urls = metrics.workerPorts.map(
      (port, r) => `${workerNamePrefix}${r} http://${host}:${port}/metrics`,
    );
    const coordinatorUrl =
      outDir === undefined ? [] : [`coordinator http://${host}:${metrics.coordinatorPort}/metrics`];
    this.log(`launch: metrics at ${[...coordinatorUrl, ...urls].join(", ")}`);
    // The run directory is the coordinator's: a node of workers only has none to write the targets into.
    if (outDir === undefined) return;
    const ports = [metrics.coordinatorPort, ...metrics.workerPorts];
    this.log(`launch: Prometheus targets in ${writeMetricsTargets(outDir, metrics.host, ports)}`);
  }

  /**
   * The first signal: the coordinator finishes the step, has a worker checkpoint and shuts them down.
   * Without a coordinator here, each worker is told: it tells the job's coordinator it is leaving, and the
   * job stops after the step with a checkpoint.
   */
  private drain(signal: string): void {
    if (this.state !== "running") return; // already on its way out
    this.enter("draining", signal);
    const { drainTimeoutMs } = this.options.deadlines;
    for (const child of this.coordinator ? [this.coordinator] : this.workers.filter((w) => w.running)) {
      child.signal("SIGTERM");
      this.after(drainTimeoutMs, () =>
        this.stop(child, `did not finish draining within ${drainTimeoutMs} ms`),
      );
    }
  }

  /** A worker that dies while the coordinator runs is news now, not at the end. */
  private workerEnded(worker: LaunchedProcess, end: ProcessEnd): void {
    const coordinator = this.coordinator;
    if (coordinator === undefined) {
      if (exitStatus(end) !== 0) this.log(`launch: ${worker.name} ${describeEnd(end)}`);
      return;
    }
    if (!coordinator.running) return;
    if (exitStatus(end) !== 0) this.log(`launch: ${worker.name} ${describeEnd(end)}`);
    if (this.workers.every((w) => !w.running)) {
      // It notices the silence, saves what it can and exits; if it does not, it has nothing left to drive.
      const { drainTimeoutMs } = this.options.deadlines;
      this.after(drainTimeoutMs, () =>
        this.stop(coordinator, `is still running ${drainTimeoutMs} ms after its last worker exited`),
      );
    }
  }

  /** nats-server died under the job: the cause of what follows (the children stop on their own deadlines). */
  private natsExited(exit: ChildServerExit): void {
    if (this.state === "stopping-nats" || this.state === "exited") return;
    const end: ProcessEnd =
      exit.signal !== null
        ? { kind: "killed", signal: exit.signal }
        : { kind: "exited", code: exit.code ?? 0 };
    this.natsDied = { name: "nats-server", end, endedAtMs: exit.atMs, killedByLaunch: false };
    this.log(`launch: nats-server ${describeEnd(end)}; the coordinator and workers will stop`);
  }

  /** SIGTERM now, SIGKILL after the grace; either way the kill is launch's, not the process's failure. */
  private stop(child: LaunchedProcess, why: string): void {
    if (!child.running) return;
    this.log(`launch: the ${child.name} ${why}; stopping it`);
    child.killedByLaunch = true;
    child.signal("SIGTERM");
    this.after(this.options.deadlines.killAfterMs, () => child.signal("SIGKILL"));
  }

  /**
   * The coordinator has exited: its workers exit too (told to, or on its silence) or are killed. After a
   * coordinator that failed, nobody will tell them: they get SIGTERM at once (a worker leaves on it) rather
   * than waiting out its silence, e.g. a coordinator that refused its --data before the job began.
   */
  private async stopWorkers(coordinatorEnd: ProcessEnd): Promise<void> {
    const { workerGraceMs } = this.options.deadlines;
    const allEnded = Promise.all(this.workers.map((w) => w.ended));
    if (exitStatus(coordinatorEnd) !== 0)
      for (const worker of this.workers.filter((w) => w.running)) {
        worker.killedByLaunch = true;
        worker.signal("SIGTERM");
      }
    if (await within(allEnded, workerGraceMs)) return;
    for (const worker of this.workers.filter((w) => w.running)) {
      this.log(`launch: ${worker.name} still running ${workerGraceMs} ms after the coordinator; killing it`);
      worker.killedByLaunch = true;
      worker.signal("SIGKILL");
    }
    await within(allEnded, KILLED_EXIT_MS);
  }

  private async stopBus(bus: Bus): Promise<void> {
    if (!(await within(bus.stop(), BUS_STOP_MS)))
      this.log(`launch: NATS did not stop within ${BUS_STOP_MS} ms`);
  }

  /** The second signal: no more waiting. Resolves once everything launch started has been sent SIGKILL. */
  private async killEverything(signal: unknown): Promise<number> {
    this.log(`launch: a second signal (${String(signal)}): killing everything launch started`);
    this.killChildren();
    // A nats-server still starting is killed as soon as it is known.
    await within(this.busStarted, BUS_STOP_MS);
    this.bus?.kill();
    this.enter("exited", `status ${signalStatus(signal)}`);
    return signalStatus(signal);
  }

  private killChildren(): void {
    for (const child of [this.coordinator, ...this.workers]) {
      if (child === undefined || !child.running) continue;
      child.killedByLaunch = true;
      child.signal("SIGKILL");
    }
  }

  private after(ms: number, then: () => void): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      then();
    }, ms);
    this.timers.add(timer);
  }

  private clearTimers(): void {
    this.timers.forEach(clearTimeout);
    this.timers.clear();
  }
}

function ended(child: LaunchedProcess): EndedProcess {
  return {
    name: child.name,
    end: child.end ?? { kind: "killed", signal: "SIGKILL" },
    endedAtMs: child.endedAtMs ?? Date.now(),
    killedByLaunch: child.killedByLaunch,
  };
}

/** Runs the job on this node; resolves with the status launch should exit with (see launch-outcome.ts). */
export function launch(options: LaunchOptions, log: Log, signals: LaunchSignals): Promise<number> {
  return new Launch(options, log, signals).run();
}
