// A server run as a child process (nats-server for launch; Prometheus in tests): started, polled until it
// is ready or a deadline passes, stopped with SIGTERM then SIGKILL. Its stderr is drained for the whole
// run (an unread pipe would fill and block the server's logging) and its tail kept for error messages.
// With `ownProcessGroup` it gets a process group (a session) of its own, so a signal sent to its parent's
// group (Ctrl-C, systemd's SIGTERM) does not reach it and its parent decides when it stops.
import { spawn } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../shared/errors.js";

const STDERR_TAIL_CHARS = 4096;

/** The server could not be started; `stderr` holds the tail of what it printed. */
export class ChildServerStartError extends UserError {
  override readonly name = "ChildServerStartError";
  constructor(
    readonly binary: string,
    reason: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`${binary}: ${reason}${stderr.trim() === "" ? "" : `\n${stderr.trim()}`}`, options);
  }
}

export interface ChildServerOptions {
  readonly binary: string;
  readonly args: readonly string[];
  /** True once the server serves (a TCP accept, an HTTP 200). */
  readonly isReady: () => Promise<boolean>;
  /** What "ready" means, for the timeout message ("accepting on 127.0.0.1:4222"). */
  readonly readyWhat: string;
  readonly readyTimeoutMs: number;
  readonly pollMs: number;
  /** Grace between SIGTERM and SIGKILL on stop. */
  readonly killAfterMs: number;
  /** Start it in a process group of its own, out of reach of signals sent to ours. */
  readonly ownProcessGroup?: boolean;
  /** Its environment; default ours. */
  readonly env?: NodeJS.ProcessEnv;
}

/** How the server ended: an exit code, or the signal that killed it. */
export interface ChildServerExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Date.now() when it exited. */
  readonly atMs: number;
}

export interface ChildServer {
  readonly pid: number;
  /** Settles when it exits, for whatever reason: a server that dies mid-run is news to its parent. */
  readonly exit: Promise<ChildServerExit>;
  /** SIGTERM, then SIGKILL after the grace; resolves once it has exited. */
  stop(): Promise<void>;
  /** SIGKILL now, without waiting (for a parent about to exit at once). */
  kill(): void;
}

export async function startChildServer(options: ChildServerOptions): Promise<ChildServer> {
  const child = spawn(options.binary, [...options.args], {
    stdio: ["ignore", "ignore", "pipe"],
    detached: options.ownProcessGroup ?? false,
    ...(options.env ? { env: options.env } : {}),
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    stderr = (stderr + text).slice(-STDERR_TAIL_CHARS);
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const exit = new Promise<ChildServerExit>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal, atMs: Date.now() })),
  );
  let spawnError: Error | undefined;
  child.once("error", (error) => {
    spawnError = error;
  });
  const running = () => child.exitCode === null && child.signalCode === null;
  const stop = async (): Promise<void> => {
    if (spawnError !== undefined) return;
    if (running()) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), options.killAfterMs);
      await exited;
      clearTimeout(timer);
    }
    await exited;
  };
  const kill = () => {
    if (running()) child.kill("SIGKILL");
  };

  const startError = (reason: string, cause?: unknown) =>
    new ChildServerStartError(options.binary, reason, stderr, { cause });
  const deadline = Date.now() + options.readyTimeoutMs;
  for (;;) {
    if (spawnError !== undefined) throw startError(`could not run (${spawnError.message})`, spawnError);
    if (!running()) {
      await exited; // stderr complete
      const how = child.exitCode !== null ? `code ${child.exitCode}` : `signal ${child.signalCode}`;
      throw startError(`exited with ${how} before ${options.readyWhat}`);
    }
    if (await options.isReady()) return { pid: child.pid ?? 0, exit, stop, kill };
    if (Date.now() > deadline) {
      await stop();
      throw startError(`not ${options.readyWhat} after ${options.readyTimeoutMs} ms`);
    }
    await sleep(options.pollMs);
  }
}
