// A real nats-server child process on a free loopback port, for `imtrain launch` when the binary is
// installed (the embedded broker is the fallback). Started with `-a 127.0.0.1 -p PORT`, ready once it
// accepts a TCP connection, stopped with SIGTERM. With a token it admits only clients that give it: the
// token reaches nats-server in its environment, named by a config file, so neither its command line nor
// a file holds it.

import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
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
  /** Require this token of every client (newServerToken()); not with `configFile`. */
  token?: string;
}

/** nats-server could not be started (one kind of failed child server). */
export { ChildServerStartError as NatsServerStartError } from "../child-server.js";

const FALLBACK_BINARY = "/usr/sbin/nats-server";
const POLL_INTERVAL_MS = 25;
const TOKEN_VARIABLE = "IMTRAIN_NATS_SERVER_TOKEN";

/**
 * A random token for a server of our own. nats-server parses a variable's value as a config value, so
 * "123…" would be a number and "-…" an error: a letter first and hex after keep it a plain string.
 */
export function newServerToken(): string {
  return `imtrain-${randomBytes(24).toString("hex")}`;
}

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
  if (options.token !== undefined && options.configFile !== undefined)
    throw new Error("startNatsServerProcess: give a token or a config file, not both");
  const tokenConfig = options.token === undefined ? undefined : writeTokenConfig();
  const configFile = options.configFile ?? tokenConfig?.file;
  const config = configFile === undefined ? [] : ["-c", configFile];
  const server = await startChildServer({
    binary,
    args: ["-a", "127.0.0.1", "-p", String(port), ...config],
    ...(options.token === undefined ? {} : { env: { ...process.env, [TOKEN_VARIABLE]: options.token } }),
    isReady: () => accepts(port),
    readyWhat: `accepting connections on 127.0.0.1:${port}`,
    readyTimeoutMs,
    pollMs: POLL_INTERVAL_MS,
    killAfterMs,
    ownProcessGroup: options.ownProcessGroup ?? false,
  }).finally(() => {
    // nats-server has read its config by the time it accepts connections (or has failed).
    if (tokenConfig) rmSync(tokenConfig.dir, { recursive: true, force: true });
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    pid: server.pid,
    exit: server.exit,
    stop: () => server.stop(),
    kill: () => server.kill(),
  };
}

/** A config file that names the token's variable (it holds no secret), in a directory of its own. */
function writeTokenConfig(): { dir: string; file: string } {
  const dir = mkdtempSync(join(tmpdir(), "imtrain-nats-server-"));
  const file = join(dir, "nats.conf");
  writeFileSync(file, `authorization {\n  token: $${TOKEN_VARIABLE}\n}\n`);
  return { dir, file };
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
