// `imtrain launch` under signals and failures, as a terminal, systemd or the OOM killer deliver them: a
// signal to launch's process group drains the job (checkpoint, exit 0, no stack traces); a child killed
// with SIGKILL ends launch with a status and a line naming it; nothing launch started outlives it.
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { connect as tcpConnect } from "node:net";
import { existsSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { test, type TestContext } from "node:test";
import type { JobSummary } from "../../coordinator/job-records.js";
import { loadCheckpoint } from "../../shared/model/checkpoint.js";
import { CLI, runCli } from "../support/cli.js";
import { assertSameRun } from "../support/same-run.js";
import { requireNatsServer, startNatsServer } from "../support/nats.js";
import { gpuCensus, installed } from "../support/gpu.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("launch");
const data = writeSyntheticData(dir, 40, 4);
const modelConfig = writeMicroModelConfig(dir);
const TEST_TIMEOUT_MS = 60_000;

/** A launch in a process group of its own, as a shell starts a foreground job. */
interface LaunchRun {
  readonly child: ChildProcess;
  /** stdout and stderr so far. */
  readonly output: string;
  readonly exit: Promise<{ status: number | null; afterMs: number }>;
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** The pids launch reported for its children and nats-server (which are in groups of their own). */
  pids(): { coordinator: number; workers: number[]; nats: number | undefined };
  /** Every signal from now on is timed from here. */
  signalGroup(signal: NodeJS.Signals): void;
}

function startLaunch(t: TestContext, out: string, extra: readonly string[], steps = 100_000): LaunchRun {
  const env = { ...process.env };
  delete env["NATS_URL"];
  const args = [
    ...["launch", "--workers", "2", "--job", "launch-test", "--data", data, "--model", modelConfig],
    ...["--steps", String(steps), "--batch-size", "4", "--seed", "1", "--eval-fraction", "0"],
    ...["--backend", "wasm", "--heartbeat-ms", "200", "--out", out, ...extra],
  ];
  const child = spawn(process.execPath, [CLI, ...args], { detached: true, env, stdio: "pipe" });
  let output = "";
  const append = (chunk: Buffer) => (output += chunk.toString());
  child.stdout.on("data", append);
  child.stderr.on("data", append);
  let signalledAtMs = Date.now();
  const exit = new Promise<{ status: number | null; afterMs: number }>((resolve) =>
    child.once("close", (status) => resolve({ status, afterMs: Date.now() - signalledAtMs })),
  );
  const run: LaunchRun = {
    child,
    get output() {
      return output;
    },
    exit,
    async waitFor(pattern, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const match = pattern.exec(output);
        if (match) return match;
        if (Date.now() > deadline || child.exitCode !== null)
          throw new Error(`no ${String(pattern)} within ${timeoutMs} ms:\n${output.slice(-3000)}`);
        await sleep(50);
      }
    },
    pids() {
      const children = /started the coordinator \(pid (\d+)\) and workers \(pids w0 (\d+), w1 (\d+)\)/.exec(
        output,
      );
      const nats = /launch: started \S+ \(pid (\d+)\) at nats:/.exec(output);
      return {
        coordinator: Number(children?.[1] ?? 0),
        workers: [Number(children?.[2] ?? 0), Number(children?.[3] ?? 0)],
        nats: nats ? Number(nats[1]) : undefined,
      };
    },
    signalGroup(signal) {
      signalledAtMs = Date.now();
      process.kill(-(child.pid ?? 0), signal);
    },
  };
  t.after(() => {
    // Whatever is left, in every group it may be in, so a failed test leaves nothing running.
    const { coordinator, workers, nats } = run.pids();
    for (const pid of [-(child.pid ?? 0), coordinator, ...workers, nats ?? 0]) {
      if (pid !== 0) kill(pid, "SIGKILL");
    }
  });
  return run;
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every pid gone within `timeoutMs` (a killed child is reaped by init a moment after launch exits). */
async function assertAllGone(candidates: readonly number[], timeoutMs = 5_000): Promise<void> {
  const pids = candidates.filter((pid) => pid > 0);
  const deadline = Date.now() + timeoutMs;
  while (pids.some(alive) && Date.now() < deadline) await sleep(50);
  assert.deepEqual(pids.filter(alive), [], "processes launch started are still running after it exited");
}

function accepts(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = tcpConnect(Number(port), hostname);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/** What an orderly shutdown must not print. */
function assertNoCrash(output: string): void {
  assert.doesNotMatch(output, /^(\[\w+\] )?\s+at /m, `a stack trace:\n${output.slice(-3000)}`);
  assert.doesNotMatch(output, /NatsError/, output.slice(-3000));
}

/** The drained run's checkpoint holds the steps it completed. */
async function assertCheckpointed(out: string): Promise<void> {
  const saved = (await loadCheckpoint(join(out, "checkpoint"))).trainer?.step ?? 0;
  assert.ok(saved >= 1 && saved < 100_000, `saved step ${saved}`);
}

async function drainsOnGroupSignal(t: TestContext, signal: NodeJS.Signals, nats: string[]): Promise<void> {
  const out = join(dir, `group-${signal}-${nats.join("")}`);
  const run = startLaunch(t, out, nats);
  const natsUrl = (await run.waitFor(/at (nats:\/\/127\.0\.0\.1:\d+)/))[1] ?? "";
  // Off a terminal, progress prints the first step, then every 5% or 30 s.
  await run.waitFor(/\[coordinator\] step 1\//);
  const { coordinator, workers, nats: natsPid } = run.pids();
  run.signalGroup(signal);
  const { status } = await run.exit;
  assert.equal(status, 0, run.output.slice(-3000));
  assert.match(run.output, new RegExp(`launch: running → draining \\(${signal}\\)`));
  assert.match(run.output, /stopped after step \d+; checkpoint saved/);
  assertNoCrash(run.output);
  await assertCheckpointed(out);
  await assertAllGone([coordinator, ...workers, ...(natsPid === undefined ? [] : [natsPid])]);
  assert.equal(await accepts(natsUrl), false, `NATS at ${natsUrl} still accepts connections`);
}

test(
  "launch - SIGINT to its process group (Ctrl-C) drains: checkpoint, exit 0, no stack trace, nats-server stopped",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (requireNatsServer(t) === undefined) return;
    await drainsOnGroupSignal(t, "SIGINT", []);
  },
);

test(
  "launch - SIGTERM to its process group (systemd) drains: checkpoint, exit 0, no stack trace, nats-server stopped",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (requireNatsServer(t) === undefined) return;
    await drainsOnGroupSignal(t, "SIGTERM", []);
  },
);

test(
  "launch - Ctrl-C (SIGINT to its process group), then --resume: the run matches an unbroken one",
  { timeout: 3 * TEST_TIMEOUT_MS },
  async (t) => {
    if (requireNatsServer(t) === undefined) return;
    // Both runs with 2 workers, so float sums go in one order and the match is to the bit.
    const steps = 300;
    const flags = (out: string) => [
      ...["launch", "--workers", "2", "--job", "launch-resume", "--data", data, "--model", modelConfig],
      ...["--steps", String(steps), "--batch-size", "4", "--seed", "1", "--eval-fraction", "0"],
      ...["--backend", "wasm", "--out", out],
    ];
    const unbroken = join(dir, "resume-unbroken");
    const reference = await runCli(flags(unbroken));
    assert.equal(reference.status, 0, reference.stderr.slice(-2000));

    const out = join(dir, "resume-interrupted");
    const run = startLaunch(t, out, [], steps);
    await run.waitFor(/\[coordinator\] step 1\//);
    run.signalGroup("SIGINT");
    assert.equal((await run.exit).status, 0, run.output.slice(-3000));
    assertNoCrash(run.output);
    const saved = (await loadCheckpoint(join(out, "checkpoint"))).trainer?.step ?? 0;
    assert.ok(saved >= 1 && saved < steps, `saved step ${saved}`);

    const resumed = await runCli([...flags(out), "--resume", out]);
    assert.equal(resumed.status, 0, resumed.stderr.slice(-2000));
    await assertSameRun(unbroken, out, steps);
  },
);

test(
  "launch - SIGINT to its process group drains the same way on the in-process NATS bus",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    await drainsOnGroupSignal(t, "SIGINT", ["--nats", "embedded"]);
  },
);

test(
  "launch - a second signal kills the children and exits at once with 128 + the signal",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (requireNatsServer(t) === undefined) return;
    const run = startLaunch(t, join(dir, "second-signal"), []);
    const natsUrl = (await run.waitFor(/at (nats:\/\/127\.0\.0\.1:\d+)/))[1] ?? "";
    await run.waitFor(/\[coordinator\] step 1\//);
    const { coordinator, workers, nats } = run.pids();
    // Two different signals: two of the same kind, both pending, may be delivered as one.
    run.signalGroup("SIGINT");
    run.signalGroup("SIGTERM");
    const { status, afterMs } = await run.exit;
    assert.ok(status === 130 || status === 143, `status ${status}:\n${run.output.slice(-2000)}`);
    assert.match(run.output, /launch: a second signal \(SIG(INT|TERM)\): killing/);
    assert.ok(afterMs < 10_000, `exited ${afterMs} ms after the second signal`);
    await assertAllGone([coordinator, ...workers, nats ?? 0]);
    assert.equal(await accepts(natsUrl), false);
  },
);

test(
  "launch - a worker killed with SIGKILL ends launch, which names it first; nothing is left running",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (requireNatsServer(t) === undefined) return;
    // Few enough steps that a coordinator which recovers from the loss (elastic) also ends the run.
    const run = startLaunch(t, join(dir, "worker-killed"), ["--worker-timeout-ms", "3000"], 300);
    const natsUrl = (await run.waitFor(/at (nats:\/\/127\.0\.0\.1:\d+)/))[1] ?? "";
    await run.waitFor(/\[coordinator\] step 1\//);
    const { coordinator, workers, nats } = run.pids();
    kill(workers[1] ?? 0, "SIGKILL");
    const { status } = await run.exit;
    if (status === 0) {
      // The coordinator carried on without w1 and finished: the job succeeded, and launch says what it lost.
      assert.match(run.output, /launch: the job finished \(w1 was killed by SIGKILL along the way\)/);
    } else {
      assert.equal(status, 128 + 9, run.output.slice(-3000));
      assert.match(run.output, /launch: w1 was killed by SIGKILL first; the coordinator then exited \d+/);
    }
    assertNoCrash(run.output);
    await assertAllGone([coordinator, ...workers, nats ?? 0]);
    assert.equal(await accepts(natsUrl), false);
  },
);

test(
  "launch - the coordinator killed with SIGKILL ends launch naming it; the workers are gone and nats-server stopped",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (requireNatsServer(t) === undefined) return;
    const run = startLaunch(t, join(dir, "coordinator-killed"), ["--worker-timeout-ms", "3000"]);
    const natsUrl = (await run.waitFor(/at (nats:\/\/127\.0\.0\.1:\d+)/))[1] ?? "";
    await run.waitFor(/\[coordinator\] step 1\//);
    const { coordinator, workers, nats } = run.pids();
    kill(coordinator, "SIGKILL");
    const killedAtMs = Date.now();
    const { status } = await run.exit;
    assert.equal(status, 128 + 9, run.output.slice(-3000));
    assert.match(run.output, /launch: the coordinator was killed by SIGKILL$/m);
    // Workers get a grace bounded by the worker timeout (3 s) + 2 heartbeats, with a floor of 5 s.
    assert.ok(Date.now() - killedAtMs < 15_000, `launch took ${Date.now() - killedAtMs} ms to exit`);
    assertNoCrash(run.output);
    await assertAllGone([...workers, nats ?? 0]);
    assert.equal(await accepts(natsUrl), false);
  },
);

test(
  "launch - two nodes: one with the coordinator and 2 workers, one with --no-coordinator and 1; the 3 ranks match train",
  { timeout: 120_000 },
  async (t) => {
    const binary = requireNatsServer(t);
    if (binary === undefined) return;
    const server = await startNatsServer(binary);
    t.after(() => server.stop());
    const job = ["--data", data, "--model", modelConfig, "--steps", "6", "--batch-size", "6", "--seed", "1"];
    const common = [...job, "--eval-fraction", "0", "--backend", "wasm"];
    const reference = join(dir, "two-nodes-train");
    const out = join(dir, "two-nodes");
    const [single, head, other] = await Promise.all([
      runCli(["train", ...common, "--out", reference]),
      runCli([
        "launch",
        "--nats",
        server.url,
        "--job",
        "two-nodes",
        "--workers",
        "3",
        "--devices",
        "cpu,cpu",
        ...common,
        "--out",
        out,
      ]),
      // The other node knows only the bus and the job: the coordinator sends it everything else.
      runCli([
        "launch",
        "--no-coordinator",
        "--nats",
        server.url,
        "--job",
        "two-nodes",
        "--devices",
        "cpu",
        "--workers",
        "1",
      ]),
    ]);
    assert.equal(single.status, 0, single.stderr.slice(-2000));
    assert.equal(head.status, 0, head.stderr.slice(-3000));
    assert.equal(other.status, 0, other.stderr.slice(-3000));
    assert.match(head.stderr, /launch: 2 workers here; the coordinator waits for 1 more/);
    assert.match(other.stderr, /launch: started workers \(pids [^)]*\) for job two-nodes's coordinator/);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as JobSummary;
    assert.equal(summary.world_size, 3);
    const names = summary.ranks?.map((rank) => rank.name) ?? [];
    assert.equal(names.filter((name) => /^w[01]$/.test(name)).length, 2, names.join(","));
    assert.equal(names.filter((name) => name === `${hostname()}-w0`).length, 1, names.join(","));
    await assertSameRun(reference, out, 6);
  },
);

test(
  "launch --devices - bad lists and a node without GPUs are refused in one line before anything starts",
  { timeout: 60_000 },
  async () => {
    const cases: [string[], RegExp][] = [
      [["--devices", "gpu:0,gpu:0"], /^imtrain: --devices: gpu:0 is listed twice/],
      [
        ["--devices", "gpu:0,gpu:1", "--backend", "wasm"],
        /^imtrain: --devices: gpu:0 for backend wasm: a CPU backend/,
      ],
      [
        ["--devices", "cpu,cpu", "--workers", "1"],
        /^imtrain: --workers: 1 is fewer than the 2 local workers/,
      ],
      [["--devices", "cpu"], /^imtrain: --workers: required with --devices cpu/],
      [
        ["--no-coordinator", "--devices", "cpu", "--workers", "1", "--nats", "embedded"],
        /^imtrain: --nats: --no-coordinator needs the NATS URL/,
      ],
    ];
    if (gpuCensus().adapters.every((a) => a.software) && !installed("@tensorflow/tfjs-node-gpu"))
      cases.push([["--devices", "all"], /^imtrain: --devices: all: this node has no GPU \(/]);
    for (const [args, expected] of cases) {
      const out = join(dir, `refused-${args.join("_").replace(/[^a-z0-9_]/gi, "")}`);
      const result = await runCli(["launch", "--data", data, ...args, "--out", out]);
      assert.equal(result.status, 2, `${args.join(" ")}: ${result.stderr}`);
      assert.match(result.stderr.trim(), expected, args.join(" "));
      assert.equal(result.stderr.trim().split("\n").length, 1, result.stderr);
      assert.equal(existsSync(out), false, `${args.join(" ")} created ${out}`);
    }
  },
);

test(
  "launch - a coordinator that refuses its --data stops the workers at once: exit 2, its one line, nothing left running",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const run = startLaunch(t, join(dir, "bad-data"), [
      "--data",
      join(dir, "no-such-file.jsonl"),
      "--nats",
      "embedded",
    ]);
    await run.waitFor(/started the coordinator/);
    const { coordinator, workers } = run.pids();
    const { status } = await run.exit;
    assert.equal(status, 2, run.output.slice(-3000));
    assert.match(run.output, /\[coordinator\] imtrain: .*no-such-file\.jsonl: cannot read data file/);
    assert.match(run.output, /launch: the coordinator exited 2\n/);
    // Stopped by launch at once (a worker still starting may go before it says so), not left to wait for a
    // coordinator until the grace runs out and they are killed.
    assert.doesNotMatch(run.output, /still running \d+ ms after the coordinator; killing it/);
    assertNoCrash(run.output);
    await assertAllGone([coordinator, ...workers]);
  },
);
