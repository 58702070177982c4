// A real nats-server child process on a free loopback port, for `imtrain launch` when the binary is
// installed (the embedded broker is the fallback). Started with `-a 127.0.0.1 -p PORT`, ready once it
// accepts a TCP connection, stopped with SIGTERM.

import { existsSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { delimiter, join } from "node:path";
import { startChildServer, type ChildServerExit } from "../child-server.js";
import { freePorts } from "../free-ports.js";

export interface NatsServerProcess {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly pid: number;
  /** Settles when it exits (stopped, or died). */
  readonly exit: Promise<ChildServerExit>;
  /** SIGTERM, then SIGKILL if it has not exited after `killAfterMs`; resolves once it has exited. */
  stop(): Promise<void>;
  /** SIGKILL now, without waiting. */
  kill(): void;
}

export interface NatsServerProcessOptions {
  /** How long to wait for the port to accept connections; default 10 s. */
  readyTimeoutMs?: number;
  /** Grace between SIGTERM and SIGKILL on stop; default 5 s. */
  killAfterMs?: number;
  /** A nats-server config file (-c), e.g. to set max_payload. */
  configFile?: string;
  /** Its own process group, so Ctrl-C or a SIGTERM to our group leaves it up until we stop it (launch). */
  ownProcessGroup?: boolean;
  /** A loopback port to use (e.g. to restart a server where its clients reconnect); default a free one. */
  port?: number;
}

/** nats-server could not be started (one kind of failed child server). */
export { ChildServerStartError as NatsServerStartError } from "../child-server.js";

const FALLBACK_BINARY = "/usr/sbin/nats-server";
const POLL_INTERVAL_MS = 25;

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
  const port = options.port ?? (await freeLoopbackPort());
  const config = options.configFile === undefined ? [] : ["-c", options.configFile];
  const server = await startChildServer({
    binary,
    args: ["-a", "127.0.0.1", "-p", String(port), ...config],
    isReady: () => accepts(port),
    readyWhat: `accepting connections on 127.0.0.1:${port}`,
    readyTimeoutMs,
    pollMs: POLL_INTERVAL_MS,
    killAfterMs,
    ownProcessGroup: options.ownProcessGroup ?? false,
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    pid: server.pid,
    exit: server.exit,
    stop: () => server.stop(),
    kill: () => server.kill(),
  };
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
