// The coordinator's edge against hostile or buggy peers: a real `imtrain coordinator` process and a real
// nats-server, with this test playing the workers over the wire protocol (join, ready, stepDone, heartbeat).
// Each case ends in a reject reply or in the coordinator exiting 2 with one `imtrain:` line naming the
// worker or ranks at fault.
import type { RankPhaseSeconds } from "../../shared/metrics/records.js";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test, type TestContext } from "node:test";
import { connect, type NatsConnection } from "nats";
import { compileTrainOptions, type TrainFlags } from "../../shared/options.js";
import {
  PROTOCOL_VERSION,
  decodeCoordinatorMessage,
  encodeMessage,
  jobSubjects,
  type CoordinatorMessage,
  type StepResult,
  type WorkerMessage,
} from "../../shared/protocol.js";
import { prepareRun } from "../../shared/train/prepare.js";
import { CLI } from "../support/cli.js";
import { sharedNatsServer } from "../support/nats.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("coordinator-protocol");
const data = writeSyntheticData(dir, 8, 5);
const modelConfig = writeMicroModelConfig(dir);
const nats = sharedNatsServer();
const TIMEOUT = { timeout: 60_000 };

interface Coordinator {
  readonly child: ChildProcess;
  stderr: string;
  readonly exit: Promise<number | null>;
  /** Resolves when stderr has printed a line matching `pattern`. */
  waitFor(pattern: RegExp): Promise<void>;
  /** The `imtrain: …` lines: a user error is exactly one. */
  errorLines(): string[];
}

/** `imtrain coordinator` for a 2-worker, 1-step job; killed when the test ends if still running. */
function startCoordinator(
  t: TestContext,
  url: string,
  job: string,
  workerTimeoutMs = 30_000,
  workers = 2,
): Coordinator {
  const args = [
    "coordinator",
    "--nats",
    url,
    "--job",
    job,
    "--workers",
    String(workers),
    "--heartbeat-ms",
    "100",
    "--worker-timeout-ms",
    String(workerTimeoutMs),
    "--heartbeat-timeout-ms",
    String(workerTimeoutMs),
    // These scripts test the fail-stop path; elastic recovery has tests of its own with real workers.
    "--max-restarts",
    "0",
    "--data",
    data,
    "--model",
    modelConfig,
    "--steps",
    "1", // step 0 is the last, so it asks for checksums
    "--batch-size",
    "2",
    "--seed",
    "1",
    "--eval-fraction",
    "0",
    "--backend",
    "wasm",
    "--out",
    join(dir, job),
  ];
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  const waiters: { pattern: RegExp; resolve: () => void }[] = [];
  const coordinator: Coordinator = {
    child,
    stderr: "",
    exit: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
    waitFor: (pattern) =>
      new Promise((resolve, reject) => {
        if (pattern.test(coordinator.stderr)) return resolve();
        waiters.push({ pattern, resolve });
        // An early exit fails the wait instead of hanging the test.
        void coordinator.exit.then((code) =>
          reject(new Error(`coordinator exited ${code} before ${pattern}:\n${coordinator.stderr}`)),
        );
      }),
    errorLines: () => coordinator.stderr.split("\n").filter((line) => line.startsWith("imtrain: ")),
  };
  child.stderr?.on("data", (chunk: Buffer) => {
    coordinator.stderr += chunk.toString();
    for (const waiter of waiters.splice(0)) {
      if (waiter.pattern.test(coordinator.stderr)) waiter.resolve();
      else waiters.push(waiter);
    }
  });
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await coordinator.exit;
  });
  return coordinator;
}

/** A NATS connection for the scripted workers, closed when the test ends. */
async function openNats(t: TestContext, url: string): Promise<NatsConnection> {
  const nc = await connect({ servers: url, name: "scripted-workers" });
  t.after(() => nc.close());
  return nc;
}

type Welcome = Extract<CoordinatorMessage, { type: "welcome" }>;

/** The test as one worker: speaks the protocol by hand and records every command sent to its rank. */
class ScriptedWorker {
  rank = -1;
  /** Every command received on the rank subject, in order. */
  readonly received: CoordinatorMessage[] = [];
  /** Commands on the rank subject that did not decode: the coordinator's own output must be valid. */
  readonly badCommands: string[] = [];
  private readonly unclaimed: CoordinatorMessage[] = [];
  private claims: (() => boolean)[] = [];
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly subjects;

  constructor(
    private readonly nc: NatsConnection,
    job: string,
    readonly name: string,
    /** Two scripted workers with one nonce are one worker asking twice. */
    readonly nonce = `${name}-${process.pid}-${Math.random()}`,
  ) {
    this.subjects = jobSubjects(job);
  }

  /** The join request; its reply, validated as a coordinator message. */
  async join(protocol = PROTOCOL_VERSION): Promise<CoordinatorMessage> {
    const request: WorkerMessage = {
      type: "join",
      protocol,
      name: this.name,
      device: "cpu",
      host: "scripted",
      pid: process.pid,
      nonce: this.nonce,
    };
    const reply = await this.nc.request(this.subjects.join, encodeMessage(request), { timeout: 10_000 });
    const message = decodeCoordinatorMessage(reply.data, this.subjects.join);
    if (message.type === "welcome") this.rank = message.rank;
    return message;
  }

  async joinWelcomed(): Promise<Welcome> {
    const reply = await this.join();
    if (reply.type !== "welcome") assert.fail(`${this.name} was not welcomed: ${JSON.stringify(reply)}`);
    return reply;
  }

  /** Subscribes to the rank subject first, as a real worker does, so `start` cannot be missed. */
  async ready(dataFingerprint: string, backend = "wasm"): Promise<void> {
    assert.ok(this.rank >= 0, `${this.name} has no rank`);
    this.nc.subscribe(this.subjects.rank(this.rank), {
      callback: (error, msg) => {
        if (error) return void this.badCommands.push(error.message);
        try {
          this.deliver(decodeCoordinatorMessage(msg.data, msg.subject));
        } catch (decodeError) {
          this.badCommands.push((decodeError as Error).message);
        }
      },
    });
    await this.nc.flush();
    this.send({
      type: "ready",
      rank: this.rank,
      dataFingerprint,
      dataPlaneAddress: "",
      backend,
      device: backend === "webgpu" ? "gpu:0" : "cpu",
      adapter: "",
    });
  }

  startHeartbeats(periodMs: number): void {
    this.heartbeat = setInterval(() => this.send({ type: "heartbeat", rank: this.rank }), periodMs);
  }

  stopHeartbeats(): void {
    clearInterval(this.heartbeat);
  }

  send(message: WorkerMessage): void {
    this.nc.publish(this.subjects.coordinator, encodeMessage(message));
  }

  /** Waits for `start` and answers it as a worker whose ring is up. */
  async started(): Promise<void> {
    const start = await this.next("start");
    this.send({ type: "ringReady", rank: this.rank, epoch: start.epoch });
  }

  /** The next command of `type` on this rank's subject (waits for it if it has not come yet). */
  next<T extends CoordinatorMessage["type"]>(type: T): Promise<Extract<CoordinatorMessage, { type: T }>> {
    return new Promise((resolve) => {
      const claim = () => {
        const index = this.unclaimed.findIndex((message) => message.type === type);
        if (index < 0) return false;
        resolve(this.unclaimed.splice(index, 1)[0] as Extract<CoordinatorMessage, { type: T }>);
        return true;
      };
      if (!claim()) this.claims.push(claim);
    });
  }

  private deliver(message: CoordinatorMessage): void {
    this.received.push(message);
    this.unclaimed.push(message);
    this.claims = this.claims.filter((claim) => !claim());
  }
}

/** What a real worker checks the coordinator against: the fingerprint of the data the job's flags read. */
async function fingerprintOf(welcome: Welcome): Promise<string> {
  const options = compileTrainOptions(welcome.job.flags as unknown as TrainFlags);
  return (await prepareRun(options, () => undefined)).dataFingerprint;
}

const RESULT: StepResult = {
  lr: 1e-3,
  trainLoss: 5.5,
  trainOutputLoss: 5.25,
  tokens: 64,
  lossTokens: 16,
  examples: 1,
  gradNorm: 1,
};
const MEMORY = { tensors: 10, bytes: 4096 };
const PHASES: RankPhaseSeconds = { data: 0.001, forward_backward: 0.01, allreduce: 0.002, optimizer: 0.001 };

/** Two scripted workers joined (ranks 0 and 1, in that order) and ready with the right data. */
async function twoReadyWorkers(nc: NatsConnection, job: string) {
  const workers = [new ScriptedWorker(nc, job, `${job}-w0`), new ScriptedWorker(nc, job, `${job}-w1`)];
  const welcomes: Welcome[] = [];
  for (const worker of workers) welcomes.push(await worker.joinWelcomed());
  assert.deepEqual(
    welcomes.map((w) => w.rank),
    [0, 1],
  );
  const fingerprint = await fingerprintOf(welcomes[0] as Welcome);
  return { workers, fingerprint };
}

const WAITING = /waiting for 2 workers on /;

test(
  "coordinator protocol - a join with another protocol version is rejected naming both versions",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "version";
    const coordinator = startCoordinator(t, server.url, job);
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const theirs = PROTOCOL_VERSION + 41;
    const reply = await new ScriptedWorker(nc, job, "old-build").join(theirs);
    if (reply.type !== "reject") assert.fail(`expected a reject, got ${JSON.stringify(reply)}`);
    assert.match(reply.reason, new RegExp(`\\b${theirs}\\b`), reply.reason);
    assert.match(
      reply.reason.replace(String(theirs), ""),
      new RegExp(`\\b${PROTOCOL_VERSION}\\b`),
      reply.reason,
    );
    // The rejected worker took no place: the next one is rank 0.
    assert.equal((await new ScriptedWorker(nc, job, "current").joinWelcomed()).rank, 0);
  },
);

test(
  "coordinator protocol - workers on different backends are refused at admission, naming each rank's",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "mixed";
    const coordinator = startCoordinator(t, server.url, job);
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const { workers, fingerprint } = await twoReadyWorkers(nc, job);
    await workers[0]?.ready(fingerprint, "wasm");
    await workers[1]?.ready(fingerprint, "webgpu");
    assert.equal(await coordinator.exit, 2);
    assert.equal(coordinator.errorLines().length, 1, coordinator.stderr);
    assert.match(
      coordinator.errorLines()[0] ?? "",
      /the workers run on different backends \(rank 0 \(mixed-w0\): wasm on cpu; rank 1 \(mixed-w1\): webgpu on gpu:0\)/,
    );
    assert.match(coordinator.stderr, /--allow-mixed-backends/);
  },
);

test(
  "coordinator protocol - a third join to a 2-worker job is rejected: it already has its 2 workers",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "third";
    const coordinator = startCoordinator(t, server.url, job);
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const first = await new ScriptedWorker(nc, job, "w0").joinWelcomed();
    const second = await new ScriptedWorker(nc, job, "w1").joinWelcomed();
    assert.deepEqual([first.rank, second.rank, first.worldSize, second.worldSize], [0, 1, 2, 2]);
    const reply = await new ScriptedWorker(nc, job, "w2").join();
    if (reply.type !== "reject") assert.fail(`expected a reject, got ${JSON.stringify(reply)}`);
    assert.match(reply.reason, /already has its 2 workers/);
  },
);

test(
  "coordinator protocol - a retried join (same nonce: its welcome was lost) gets the same rank, not a second one",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "rejoin";
    const coordinator = startCoordinator(t, server.url, job);
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const first = await new ScriptedWorker(nc, job, "w0", "nonce-a").joinWelcomed();
    const again = await new ScriptedWorker(nc, job, "w0", "nonce-a").joinWelcomed();
    const other = await new ScriptedWorker(nc, job, "w1", "nonce-b").joinWelcomed();
    assert.deepEqual([first.rank, again.rank, other.rank], [0, 0, 1]);
    await coordinator.waitFor(/worker w0 asked to join again \(its welcome was lost\?\): rank 0 again/);
  },
);

test(
  "coordinator protocol - a lost stepDone fails the job by name within 2 × the worker timeout; workers are told it failed",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "lostreply";
    const coordinator = startCoordinator(t, server.url, job, 1500); // replies due within 3 s
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const { workers, fingerprint } = await twoReadyWorkers(nc, job);
    for (const worker of workers) {
      await worker.ready(fingerprint);
      worker.startHeartbeats(100); // alive all along: only the deadline can catch this
      t.after(() => worker.stopHeartbeats());
    }
    const [w0, w1] = workers as [ScriptedWorker, ScriptedWorker];
    await Promise.all(workers.map((w) => w.started()));
    const started = Date.now();
    await Promise.all(workers.map((w) => w.next("step")));
    w0.send({
      type: "stepDone",
      rank: 0,
      step: 0,
      result: RESULT,
      phases: PHASES,
      checksum: 1,
      memory: MEMORY,
    });
    w0.send({
      type: "stepDone",
      rank: 0,
      step: 0,
      result: RESULT,
      phases: PHASES,
      checksum: 1,
      memory: MEMORY,
    }); // duplicated
    // w1's stepDone is "lost". The live w0 is asked to abort and save what it has.
    await w0.next("abort");
    const waited = Date.now() - started;
    assert.ok(waited >= 2_900 && waited < 10_000, `detected after ${waited} ms`);
    w0.send({ type: "aborted", rank: 0, completedSteps: 0 });
    await w0.next("checkpoint");
    w0.send({ type: "checkpointDone", rank: 0, step: 0, seconds: 0.01 });
    assert.equal(await coordinator.exit, 2, coordinator.stderr.slice(-2000));
    const lines = coordinator.errorLines();
    assert.match(lines[0] ?? "", /worker lostreply-w1 \(rank 1\) sent no stepDone for step 1 within 3000 ms/);
    assert.match(coordinator.stderr, /ignored an unexpected stepDone from rank 0 \(late or duplicated\)/);
    for (const worker of [w0, w1]) {
      const shutdown = await worker.next("shutdown");
      assert.equal(shutdown.failed, true, "a failed job makes its workers exit non-zero");
    }
  },
);

test(
  "coordinator protocol - a second coordinator for a job that has one is refused with one line naming the first",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const first = startCoordinator(t, server.url, "taken");
    await first.waitFor(WAITING);
    const second = startCoordinator(t, server.url, "taken");
    assert.equal(await second.exit, 2, second.stderr.slice(-2000));
    const lines = second.errorLines();
    assert.equal(lines.length, 1, second.stderr);
    assert.match(
      lines[0] ?? "",
      /^imtrain: job "taken" already has a coordinator \(.+, pid \d+, since .+\): stop it/,
    );
    assert.doesNotMatch(second.stderr, /waiting for 2 workers/, "refused before waiting for workers");
    // Another job on the same server is not affected.
    await startCoordinator(t, server.url, "untaken").waitFor(WAITING);
  },
);

test(
  "coordinator protocol - two coordinators started together for one job: exactly one is refused",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const both = [startCoordinator(t, server.url, "race"), startCoordinator(t, server.url, "race")];
    const refused = await Promise.race(both.map((c, i) => c.exit.then(() => i)));
    const other = both[1 - refused];
    assert.ok(other);
    await other.waitFor(WAITING);
    assert.match(both[refused]?.errorLines()[0] ?? "", /already has a coordinator/);
    assert.equal(other.child.exitCode, null, "the winner keeps running");
  },
);

test(
  "coordinator protocol - salvage saves from the furthest live rank when a lost message left ranks one step apart",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "apart";
    const coordinator = startCoordinator(t, server.url, job, 800, 3);
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(/waiting for 3 workers on /);
    const workers = [0, 1, 2].map((i) => new ScriptedWorker(nc, job, `${job}-w${i}`));
    const welcomes: Welcome[] = [];
    for (const worker of workers) welcomes.push(await worker.joinWelcomed());
    const fingerprint = await fingerprintOf(welcomes[0] as Welcome);
    const [w0, w1] = workers as [ScriptedWorker, ScriptedWorker, ScriptedWorker];
    for (const worker of workers) await worker.ready(fingerprint);
    for (const worker of [w0, w1]) {
      worker.startHeartbeats(100);
      t.after(() => worker.stopHeartbeats());
    }
    await Promise.all(workers.map((w) => w.started()));
    await Promise.all(workers.map((w) => w.next("step"))); // w2 goes silent now
    // w1 received the whole sum before the ring broke and applied the step; w0 did not.
    w1.send({
      type: "stepDone",
      rank: 1,
      step: 0,
      result: RESULT,
      phases: PHASES,
      checksum: 1,
      memory: MEMORY,
    });
    await Promise.all([w0.next("abort"), w1.next("abort")]);
    w0.send({ type: "aborted", rank: 0, completedSteps: 0 });
    w1.send({ type: "aborted", rank: 1, completedSteps: 1 });
    const checkpoint = await w1.next("checkpoint");
    assert.equal(checkpoint.dir, join(dir, job, "checkpoint"));
    w1.send({ type: "checkpointDone", rank: 1, step: 1, seconds: 0.01 });
    assert.equal(await coordinator.exit, 2, coordinator.stderr.slice(-2000));
    assert.match(
      coordinator.errorLines()[0] ?? "",
      /worker apart-w2 \(rank 2\) sent no heartbeat for \d+ ms.*saved the 1 completed steps/,
    );
    assert.equal(w0.received.filter((m) => m.type === "checkpoint").length, 0, "not from the rank behind");
    // The step w1 applied is on record before the checkpoint that holds it, so a resume has no gap.
    const lines = readFileSync(join(dir, job, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type: string; step: number; train_loss?: number });
    assert.deepEqual(
      lines.map((line) => `${line.type} ${line.step}`),
      ["step 1", "checkpoint 1"],
    );
    assert.equal(lines[0]?.train_loss, RESULT.trainLoss);
  },
);

test(
  "coordinator protocol - garbage on the join subject gets a reject reply, not silence",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "garbage-join";
    const coordinator = startCoordinator(t, server.url, job);
    const nc = await openNats(t, server.url);
    const subject = jobSubjects(job).join;
    await coordinator.waitFor(WAITING);
    const ask = async (bytes: Uint8Array) => {
      const reply = await nc.request(subject, bytes, { timeout: 10_000 });
      const message = decodeCoordinatorMessage(reply.data, subject);
      if (message.type !== "reject") assert.fail(`expected a reject, got ${JSON.stringify(message)}`);
      return message.reason;
    };
    const notMsgpack = await ask(new TextEncoder().encode("not msgpack at all"));
    assert.match(notMsgpack, /protocol error on imtrain\.garbage-join\.join: not msgpack/);
    const notJoin = await ask(encodeMessage({ type: "heartbeat", rank: 0 }));
    assert.match(notJoin, /expected join, got heartbeat/);
    const malformed = await ask(
      encodeMessage({
        type: "ready",
        rank: -1,
        dataFingerprint: "x",
        dataPlaneAddress: "",
        backend: "wasm",
        device: "cpu",
        adapter: "",
      }),
    );
    assert.match(malformed, /ready: field "rank" is missing or malformed/);
    // None of it took a place or broke the subscription: a proper join is still rank 0.
    assert.equal((await new ScriptedWorker(nc, job, "after-garbage").joinWelcomed()).rank, 0);
  },
);

test(
  "coordinator protocol - a worker that read different data makes the coordinator exit 2 naming it",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "fingerprint";
    const coordinator = startCoordinator(t, server.url, job);
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const { workers, fingerprint } = await twoReadyWorkers(nc, job);
    const [good, bad] = workers as [ScriptedWorker, ScriptedWorker];
    const wrong = fingerprint === "deadbeef" ? "feedface" : "deadbeef";
    await good.ready(fingerprint);
    await bad.ready(wrong);
    assert.equal(await coordinator.exit, 2, coordinator.stderr.slice(-2000));
    const lines = coordinator.errorLines();
    assert.equal(lines.length, 1, coordinator.stderr.slice(-2000));
    assert.match(lines[0] ?? "", /worker fingerprint-w1 \(rank 1\) read different data/);
    assert.match(lines[0] ?? "", new RegExp(`fingerprint ${wrong}, coordinator ${fingerprint}`));
    assert.doesNotMatch(lines[0] ?? "", /fingerprint-w0/);
    await nc.flush(); // everything the coordinator published before exiting has reached us
    assert.deepEqual(
      workers.flatMap((w) => w.received.filter((m) => m.type === "start")),
      [],
      "no worker may start on mismatched data",
    );
  },
);

test(
  "coordinator protocol - stepDone checksums that differ make the coordinator exit 2 naming the ranks of each",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "checksums";
    const coordinator = startCoordinator(t, server.url, job);
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const { workers, fingerprint } = await twoReadyWorkers(nc, job);
    const checksums = [0xaaaa1111, 0xbbbb2222];
    t.after(() => workers.forEach((w) => w.stopHeartbeats()));
    await Promise.all(
      workers.map(async (worker, rank) => {
        await worker.ready(fingerprint);
        worker.startHeartbeats(100);
        await worker.started();
        const step = await worker.next("step");
        assert.equal(step.step, 0);
        assert.equal(step.checksum, true, "the last step asks for checksums");
        const checksum = checksums[rank] ?? 0;
        worker.send({
          type: "stepDone",
          rank,
          step: 0,
          result: RESULT,
          phases: PHASES,
          checksum,
          memory: MEMORY,
        });
      }),
    );
    assert.equal(await coordinator.exit, 2, coordinator.stderr.slice(-2000));
    const lines = coordinator.errorLines();
    assert.equal(lines.length, 1, coordinator.stderr.slice(-2000));
    const line = lines[0] ?? "";
    assert.match(line, /parameter checksums differ after step 1/);
    assert.match(line, /ranks 0: aaaa1111/, line);
    assert.match(line, /ranks 1: bbbb2222/, line);
    for (const worker of workers) {
      const shutdown = await worker.next("shutdown");
      assert.match(shutdown.reason, /parameter checksums differ/);
      assert.deepEqual(worker.badCommands, []);
    }
  },
);

test(
  "coordinator protocol - a worker that goes silent after ready makes the coordinator exit 2 naming it",
  TIMEOUT,
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const job = "silent";
    const coordinator = startCoordinator(t, server.url, job, 800); // heartbeats every 100 ms
    const nc = await openNats(t, server.url);
    await coordinator.waitFor(WAITING);
    const { workers, fingerprint } = await twoReadyWorkers(nc, job);
    const [live, silent] = workers as [ScriptedWorker, ScriptedWorker];
    t.after(() => live.stopHeartbeats());
    await silent.ready(fingerprint);
    await live.ready(fingerprint);
    live.startHeartbeats(100);
    await Promise.all([live.started(), silent.started()]); // and never a word after from `silent`
    assert.equal((await live.next("step")).step, 0); // stuck in the all-reduce with the silent peer
    // Salvage: the live rank drops the step and saves the last completed one (none).
    await live.next("abort");
    live.send({ type: "aborted", rank: 0, completedSteps: 0 });
    const checkpoint = await live.next("checkpoint");
    assert.equal(checkpoint.dir, join(dir, job, "checkpoint"));
    live.send({ type: "checkpointDone", rank: 0, step: 0, seconds: 0.01 });
    assert.equal(await coordinator.exit, 2, coordinator.stderr.slice(-2000));
    const lines = coordinator.errorLines();
    assert.equal(lines.length, 1, coordinator.stderr.slice(-2000));
    assert.match(lines[0] ?? "", /worker silent-w1 \(rank 1\) sent no heartbeat for \d+ ms/);
    assert.doesNotMatch(lines[0] ?? "", /silent-w0/);
    assert.match(lines[0] ?? "", /saved the 0 completed steps: continue with --resume /);
    assert.match((await live.next("shutdown")).reason, /silent-w1 \(rank 1\) sent no heartbeat/);
    assert.deepEqual(live.badCommands, []);
  },
);
