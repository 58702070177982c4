// A real nats-server for integration tests, on a free loopback port, stopped when the test ends.
// Missing nats-server skips the test locally but fails loudly in CI, where .ci/run installs it.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { tempDir } from "./tiny.js";

const CANDIDATES = ["/usr/sbin/nats-server", "/usr/bin/nats-server", "/usr/local/bin/nats-server"];

export function natsServerBinary(): string | undefined {
  for (const dir of (process.env["PATH"] ?? "").split(":")) {
    if (dir && existsSync(join(dir, "nats-server"))) return join(dir, "nats-server");
  }
  return CANDIDATES.find((path) => existsSync(path));
}

/** The binary, or undefined after marking the test skipped (locally) — or throws in CI. */
export function requireNatsServer(t: TestContext): string | undefined {
  const binary = natsServerBinary();
  if (binary !== undefined) return binary;
  if (process.env["CI"] === "true")
    throw new Error("nats-server is not installed: CI must install it (.ci/run)");
  t.skip("nats-server not installed (apt-get install nats-server)");
  return undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = tcpConnect(port, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline)
      throw new Error(`nats-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export interface NatsServerHandle {
  readonly url: string;
  readonly port: number;
  stop(): Promise<void>;
}

/** Starts nats-server on a free port; `maxPayloadBytes` lowers max_payload to exercise chunking. */
export async function startNatsServer(
  binary: string,
  options: { maxPayloadBytes?: number } = {},
): Promise<NatsServerHandle> {
  const port = await freePort();
  const args = ["-a", "127.0.0.1", "-p", String(port)];
  if (options.maxPayloadBytes !== undefined) {
    const config = join(tempDir("nats"), "nats.conf");
    writeFileSync(config, `max_payload: ${options.maxPayloadBytes}\n`);
    args.push("-c", config);
  }
  const child: ChildProcess = spawn(binary, args, { stdio: "ignore" });
  await waitForPort(port, 5000);
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}
