// A real nats-server child process on a free loopback port, for `imtrain launch` when the binary is
// installed (the embedded broker is the fallback). Started with `-a 127.0.0.1 -p PORT`, ready once it
// accepts a TCP connection, stopped with SIGTERM.

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { delimiter, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../../shared/errors.js";
import { freePorts } from "../free-ports.js";

export interface NatsServerProcess {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  /** SIGTERM, then SIGKILL if it has not exited after `killAfterMs`; resolves once it has exited. */
  stop(): Promise<void>;
}

export interface NatsServerProcessOptions {
  /** How long to wait for the port to accept connections; default 10 s. */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop; default 5 s. */
  killAfterMs?: number;
  /** A nats-server config file (-c), e.g. to set max_payload. */
  configFile?: string;
}

/** nats-server could not be started; `stderr` holds the tail of what it printed. */
export class NatsServerStartError extends UserError {
  override readonly name = "NatsServerStartError";
  constructor(
    readonly binary: string,
    reason: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(`${binary}: ${reason}${stderr.trim() === "" ? "" : `\n${stderr.trim()}`}`, options);
  }
}

const FALLBACK_BINARY = "/usr/sbin/nats-server";
const POLL_INTERVAL_MS = 25;
const STDERR_TAIL_CHARS = 4096;

/** The nats-server on PATH, else /usr/sbin/nats-server (Debian's package puts it there), else undefined. */
export function findNatsServer(): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, "nats-server"))) return join(dir, "nats-server");
  }
  return existsSync(FALLBACK_BINARY) ? FALLBACK_BINARY : undefined;
}

export async function startNatsServerProcess(
  binary: string,
  options: NatsServerProcessOptions = {},
): Promise<NatsServerProcess> {
  const readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
  const killAfterMs = options.killAfterMs ?? 5_000;
  const port = await freeLoopbackPort();
  // stderr is drained for the whole run: an unread pipe would fill and block nats-server's logging.
  const config = options.configFile === undefined ? [] : ["-c", options.configFile];
  const child = spawn(binary, ["-a", "127.0.0.1", "-p", String(port), ...config], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    stderr = (stderr + text).slice(-STDERR_TAIL_CHARS);
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let spawnError: Error | undefined;
  child.once("error", (error) => {
    spawnError = error;
  });

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
      await exited;
      clearTimeout(timer);
    }
    await exited;
  };

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (spawnError !== undefined)
      throw new NatsServerStartError(binary, `could not run (${spawnError.message})`, stderr, {
        cause: spawnError,
      });
    if (child.exitCode !== null || child.signalCode !== null) {
      await exited; // stderr complete
      const how = child.exitCode !== null ? `code ${child.exitCode}` : `signal ${child.signalCode}`;
      throw new NatsServerStartError(binary, `exited with ${how} before accepting connections`, stderr);
    }
    if (await accepts(port)) return { url: `nats://127.0.0.1:${port}`, stop };
    if (Date.now() > deadline) {
      await stop();
      throw new NatsServerStartError(
        binary,
        `not accepting on 127.0.0.1:${port} after ${readyTimeoutMs} ms`,
        stderr,
      );
    }
    await sleep(POLL_INTERVAL_MS);
  }
}

/** A port the OS just handed out; another process could take it before nats-server binds, which fails fast. */
export async function freeLoopbackPort(): Promise<number> {
  const [port] = await freePorts("127.0.0.1", 1);
  return port ?? 0;
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}
