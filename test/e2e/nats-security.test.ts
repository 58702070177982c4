// imtrain's commands against a nats-server that requires credentials or TLS, as a user runs them: a job
// runs to the end with the token in the URL, a flag, a file or the environment, with a user and password,
// and over TLS with --nats-tls-ca; without them every command is refused in one line, exit 2, within
// seconds. launch's own nats-server admits only its children, which get its token in their environment.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test } from "node:test";
import { connect } from "nats";
import { newServerToken } from "../../coordinator/nats/server-process.js";
import { CLI, runCli, type CliRun } from "../support/cli.js";
import { requireNatsServer, startConfiguredNatsServer } from "../support/nats.js";
import { makeTestCa, natsTlsConfig, requireOpenssl } from "../support/test-ca.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("nats-security");
const data = writeSyntheticData(dir, 40, 4);
const modelConfig = writeMicroModelConfig(dir);
const TEST_TIMEOUT_MS = 120_000;
/** A refusal is said at the first connect: well within this, whatever the machine's load. */
const REFUSED_WITHIN_MS = 10_000;

function jobFlags(out: string): string[] {
  return [
    ...["--data", data, "--model", modelConfig, "--steps", "6", "--batch-size", "4"],
    ...["--backend", "wasm", "--eval-fraction", "0", "--out", join(dir, out)],
  ];
}

/** Our environment without any NATS settings of its own, plus `extra`. */
function env(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("NATS_")));
  return { ...clean, ...extra };
}

const server = startConfiguredNatsServer;

function assertFinished(run: CliRun, secret?: string): void {
  assert.equal(run.status, 0, run.stderr.slice(-3000));
  const summary = JSON.parse(run.stdout.trim().split("\n").at(-1) ?? "{}") as { completed_steps?: number };
  assert.equal(summary.completed_steps, 6);
  if (secret !== undefined) assert.ok(!(run.stderr + run.stdout).includes(secret), "the secret was printed");
}

/** Exit 2 with one line (no stack trace, no reconnect loop) matching `pattern`, within seconds. */
async function assertRefused(args: readonly string[], environment: NodeJS.ProcessEnv, pattern: RegExp) {
  const startedMs = Date.now();
  const run = await runCli(args, environment);
  const elapsedMs = Date.now() - startedMs;
  assert.equal(run.status, 2, run.stderr);
  // One error line, last (a line before it may say which run directory the command opened), no stack.
  const lines = run.stderr.trim().split("\n");
  assert.equal(
    lines.filter((line) => line.startsWith("imtrain: ")).length,
    1,
    `one error line:\n${run.stderr}`,
  );
  assert.doesNotMatch(run.stderr, /^\s+at /m, `a stack trace:\n${run.stderr}`);
  assert.match(lines.at(-1) ?? "", pattern);
  assert.ok(elapsedMs < REFUSED_WITHIN_MS, `refused after ${elapsedMs} ms`);
}

test(
  "nats security - a token server: launch, coordinator and worker without the token are refused in one line within seconds",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const nats = await server(t, { token: newServerToken() });
    if (nats === undefined) return;
    const refusal =
      /^imtrain: NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(Authorization Violation\): give --nats-token\(-file\), --nats-user\/--nats-password, --nats-nkey, --nats-creds or credentials in the URL$/;
    await Promise.all([
      assertRefused(["launch", "--workers", "2", "--nats", nats.url, ...jobFlags("refused")], env(), refusal),
      assertRefused(
        ["coordinator", "--workers", "2", "--nats", nats.url, ...jobFlags("refused-c")],
        env(),
        refusal,
      ),
      assertRefused(["worker", "--nats", nats.url, "--job", "refused"], env(), refusal),
      assertRefused(
        ["worker", "--nats", nats.url.replace("nats://", "nats://wrong-token@")],
        env(),
        /^imtrain: NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(Authorization Violation\): check the token from the URL$/,
      ),
    ]);
  },
);

test(
  "nats security - a token in the URL: launch runs the job to the end, and no line prints the token",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const token = newServerToken();
    const nats = await server(t, { token });
    if (nats === undefined) return;
    const url = nats.url.replace("nats://", `nats://${token}@`);
    const run = await runCli(["launch", "--workers", "2", "--nats", url, ...jobFlags("url-token")], env());
    assertFinished(run, token);
  },
);

test(
  "nats security - a coordinator with --nats-token-file and workers with $NATS_TOKEN run the job to the end",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const token = newServerToken();
    const nats = await server(t, { token });
    if (nats === undefined) return;
    const tokenFile = join(dir, "token");
    writeFileSync(tokenFile, `${token}\n`);
    const job = ["--nats", nats.url, "--job", "token-file"];
    const coordinator = runCli(
      ["coordinator", ...job, "--workers", "2", "--nats-token-file", tokenFile, ...jobFlags("token-file")],
      env(),
    );
    const workers = await Promise.all(
      [0, 1].map((i) => runCli(["worker", ...job, "--name", `w${i}`], env({ NATS_TOKEN: token }))),
    );
    assertFinished(await coordinator, token);
    assert.deepEqual(
      workers.map((w) => w.status),
      [0, 0],
      workers.map((w) => w.stderr.slice(-1000)).join("\n"),
    );
  },
);

test(
  "nats security - user and password: launch with --nats-user and $NATS_PASSWORD runs; a wrong password is refused naming the user",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const nats = await server(t, { config: 'authorization {\n  user: alice\n  password: "pw-e2e"\n}\n' });
    if (nats === undefined) return;
    const run = await runCli(
      ["launch", "--workers", "2", "--nats", nats.url, "--nats-user", "alice", ...jobFlags("user")],
      env({ NATS_PASSWORD: "pw-e2e" }),
    );
    assertFinished(run, "pw-e2e");
    const wrong = join(dir, "wrong-password");
    writeFileSync(wrong, "not-it\n");
    await assertRefused(
      ["worker", "--nats", nats.url, "--nats-user", "alice", "--nats-password-file", wrong],
      env(),
      /^imtrain: NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(Authorization Violation\): check user alice from --nats-user\/--nats-password-file .*wrong-password$/,
    );
  },
);

test(
  "nats security - TLS: a job with --nats-tls-ca runs to the end; without the CA launch is refused in one line naming it",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (!requireOpenssl(t)) return;
    const ca = makeTestCa();
    const nats = await server(t, { config: natsTlsConfig(ca) });
    if (nats === undefined) return;
    await assertRefused(
      ["launch", "--workers", "2", "--nats", nats.url, ...jobFlags("tls-refused")],
      env(),
      /^imtrain: NATS at nats:\/\/127\.0\.0\.1:\d+: TLS failed \(.*\): give --nats-tls-ca with the CA that signed the server's certificate$/,
    );
    const run = await runCli(
      ["launch", "--workers", "2", "--nats", nats.url, "--nats-tls-ca", ca.caFile, ...jobFlags("tls")],
      env(),
    );
    assertFinished(run);
  },
);

test(
  "nats security - launch's own nats-server admits only its children, who get its token in their environment, not argv",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (requireNatsServer(t) === undefined) return;
    const args = ["launch", "--workers", "2", "--job", "own-server", ...jobFlags("own-server")];
    args[args.indexOf("--steps") + 1] = "100000";
    const child = spawn(process.execPath, [CLI, ...args], {
      detached: true,
      env: env(),
      stdio: ["ignore", "ignore", "pipe"],
    });
    let output = "";
    child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
    t.after(() => {
      if (child.exitCode === null) process.kill(-(child.pid ?? 0), "SIGKILL");
    });
    const waitFor = async (pattern: RegExp): Promise<RegExpExecArray> => {
      for (const deadline = Date.now() + 60_000; Date.now() < deadline; await sleep(50)) {
        const match = pattern.exec(output);
        if (match) return match;
      }
      throw new Error(`no ${String(pattern)}:\n${output.slice(-3000)}`);
    };
    const url = (await waitFor(/launch: started \S+ \(pid \d+\) at (nats:\/\/127\.0\.0\.1:\d+)/))[1] ?? "";
    const pids = await waitFor(
      /started the coordinator \(pid (\d+)\) and workers \(pids w0 (\d+), w1 (\d+)\)/,
    );
    await waitFor(/\[coordinator\] step 1\//);

    await assert.rejects(connect({ servers: url, reconnect: false }), /Authorization Violation/);
    if (existsSync("/proc/self/environ")) {
      for (const pid of pids.slice(1, 4)) {
        const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
        const environ = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
        const token = environ.find((entry) => entry.startsWith("NATS_TOKEN="))?.slice("NATS_TOKEN=".length);
        assert.ok(token !== undefined, `pid ${pid} has no NATS_TOKEN`);
        assert.ok(!argv.some((arg) => arg.includes(token)), `pid ${pid}'s command line holds the token`);
        const nc = await connect({ servers: url, token, reconnect: false });
        await nc.close();
      }
    }
    process.kill(-(child.pid ?? 0), "SIGTERM");
    assert.equal(await exited, 0, output.slice(-3000));
  },
);
