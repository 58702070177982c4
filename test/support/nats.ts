// A real nats-server for integration tests, on a free loopback port, stopped when the test ends.
// Missing nats-server skips the test locally but fails loudly in CI, where .ci/run installs it.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, type TestContext } from "node:test";
import {
  findNatsServer,
  freeLoopbackPort,
  startNatsServerProcess,
  type NatsServerProcess,
  type NatsServerProcessOptions,
} from "../../coordinator/nats/server-process.js";
import { tempDir } from "./tiny.js";

export const natsServerBinary = findNatsServer;
export const freePort = freeLoopbackPort;

function missingInCi(): Error {
  return new Error("nats-server is not installed: CI must install it (.ci/run)");
}

/** The binary, or undefined after marking the test skipped (locally) — or throws in CI. */
export function requireNatsServer(t: TestContext): string | undefined {
  const binary = natsServerBinary();
  if (binary !== undefined) return binary;
  if (process.env["CI"] === "true") throw missingInCi();
  t.skip("nats-server not installed (apt-get install nats-server)");
  return undefined;
}

export interface NatsServerHandle {
  readonly url: string;
  stop(): Promise<void>;
}

/** Starts nats-server on a free port; `maxPayloadBytes` lowers max_payload to exercise chunking. */
export async function startNatsServer(
  binary: string,
  options: { maxPayloadBytes?: number } = {},
): Promise<NatsServerHandle> {
  if (options.maxPayloadBytes === undefined) return startNatsServerProcess(binary);
  const configFile = join(tempDir("nats"), "nats.conf");
  writeFileSync(configFile, `max_payload: ${options.maxPayloadBytes}\n`);
  return startNatsServerProcess(binary, { configFile });
}

/**
 * One nats-server for every test in a file: started before them, stopped after. The getter returns
 * undefined when nats-server is missing off CI (each test then skips); in CI a missing server fails.
 */
export function sharedNatsServer(): () => NatsServerHandle | undefined {
  let server: NatsServerHandle | undefined;
  before(async () => {
    const binary = natsServerBinary();
    if (binary === undefined && process.env["CI"] === "true") throw missingInCi();
    if (binary !== undefined) server = await startNatsServer(binary);
  });
  after(() => server?.stop());
  return () => server;
}

/**
 * A nats-server for one test, set up by a config file's text or by launcher options (a token, a port),
 * stopped when the test ends; undefined (the test skipped) when nats-server is missing off CI.
 */
export async function startConfiguredNatsServer(
  t: TestContext,
  setup: { config: string } | NatsServerProcessOptions,
): Promise<NatsServerProcess | undefined> {
  const binary = requireNatsServer(t);
  if (binary === undefined) return undefined;
  const configFile = join(tempDir("nats-server"), "nats.conf");
  if ("config" in setup) writeFileSync(configFile, setup.config);
  const started = await startNatsServerProcess(binary, "config" in setup ? { configFile } : setup);
  t.after(() => started.stop());
  return started;
}
