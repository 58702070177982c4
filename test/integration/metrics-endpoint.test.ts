// The metrics endpoint of a real process: what /metrics and /healthz answer, and that a `train` run's
// counters agree with its metrics.jsonl.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { Counter, Gauge, Registry } from "prom-client";
import { runTrainJob } from "../../coordinator/train-job.js";
import { parseTrainFlags } from "../../cli/flags.js";
import { startMetricsEndpoint } from "../../shared/metrics/endpoint.js";
import { Health } from "../../shared/metrics/health.js";
import { compileMetricsOptions } from "../../shared/metrics/options.js";
import { compileTrainOptions } from "../../shared/options.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("metrics-endpoint");

/** One sample's value from Prometheus text, by exact series (name and labels as printed). */
function sample(text: string, series: string): number {
  const line = text.split("\n").find((l) => l.startsWith(series + " "));
  assert.ok(line, `no ${series} in:\n${text.slice(0, 3000)}`);
  return Number(line.slice(series.length + 1));
}

test("metrics endpoint - /healthz is 200 until stopping, then 503 with the reason; failed wins; unknown paths 404", async () => {
  const health = new Health();
  const endpoint = await startMetricsEndpoint(new Registry(), health, "127.0.0.1", 0);
  try {
    const get = async (path: string) => {
      const response = await fetch(`${endpoint.url}${path}`);
      return { status: response.status, body: await response.text() };
    };
    assert.deepEqual(await get("/healthz"), { status: 200, body: "ok\n" });
    health.stopping("SIGTERM: draining");
    assert.deepEqual(await get("/healthz"), { status: 503, body: "stopping: SIGTERM: draining\n" });
    health.failed("worker w1 (rank 1) went silent");
    health.stopping("job over"); // never back from failed
    assert.deepEqual(await get("/healthz"), {
      status: 503,
      body: "failed: worker w1 (rank 1) went silent\n",
    });
    assert.equal((await get("/nope")).status, 404);
    assert.equal((await fetch(`${endpoint.url}/metrics`, { method: "POST" })).status, 405);
  } finally {
    await endpoint.close();
  }
});

test("metrics endpoint - a scrape is answered while this thread is busy (a long step), from the last snapshot", async () => {
  const registry = new Registry();
  const steps = new Counter({ name: "imtrain_test_steps_total", help: "steps", registers: [registry] });
  const endpoint = await startMetricsEndpoint(registry, new Health(), "127.0.0.1", 0);
  try {
    steps.inc(7);
    assert.match(await (await fetch(`${endpoint.url}/metrics`)).text(), /^imtrain_test_steps_total 7$/m);
    steps.inc(1); // not collected yet: this thread is about to block
    // spawnSync blocks this thread for the whole scrape, as a synchronous training step would.
    const started = Date.now();
    const scrape = spawnSync(
      process.execPath,
      [
        "-e",
        `fetch(${JSON.stringify(`${endpoint.url}/metrics`)}).then((r) => r.text()).then((t) => process.stdout.write(t))`,
      ],
      { encoding: "utf8", timeout: 10_000 },
    );
    assert.equal(scrape.status, 0, scrape.stderr);
    assert.ok(Date.now() - started < 5_000, "answered without waiting for this thread");
    assert.match(scrape.stdout, /^imtrain_test_steps_total 7$/m, "the last snapshot, a step old");
    assert.match(
      await (await fetch(`${endpoint.url}/metrics`)).text(),
      /^imtrain_test_steps_total 8$/m,
      "fresh again once free",
    );
  } finally {
    await endpoint.close();
  }
});

test("metrics endpoint - a collection that throws is a 500 and one log line, not an empty 200; close twice is fine", async () => {
  const registry = new Registry();
  new Gauge({
    name: "imtrain_test_broken",
    help: "throws when collected",
    registers: [registry],
    collect() {
      throw new Error("sensor on fire");
    },
  });
  const logged: string[] = [];
  const endpoint = await startMetricsEndpoint(registry, new Health(), "127.0.0.1", 0, (line) =>
    logged.push(line),
  );
  for (let i = 0; i < 2; i++) {
    const response = await fetch(`${endpoint.url}/metrics`);
    assert.equal(response.status, 500);
    assert.match(await response.text(), /collecting metrics failed: sensor on fire/);
  }
  assert.deepEqual(logged, ["collecting metrics failed (scrapes get a 500): sensor on fire"]);
  await endpoint.close();
  await endpoint.close();
  await assert.rejects(fetch(`${endpoint.url}/healthz`), "nothing listens after close");
});

test("metrics endpoint - a port in use is one clear error naming the flag", async () => {
  const first = await startMetricsEndpoint(new Registry(), new Health(), "127.0.0.1", 0);
  try {
    await assert.rejects(
      startMetricsEndpoint(new Registry(), new Health(), "127.0.0.1", first.port),
      new RegExp(`^UserError: --metrics-port ${first.port} on 127\\.0\\.0\\.1: already in use$`),
    );
  } finally {
    await first.close();
  }
});

test("metrics endpoint - bad metrics flags are refused naming the flag", () => {
  assert.throws(
    () => compileMetricsOptions({ metricsPort: 70000, metricsHost: "127.0.0.1" }),
    /--metrics-port/,
  );
  assert.throws(
    () => compileMetricsOptions({ metricsPort: 1.5, metricsHost: "127.0.0.1" }),
    /--metrics-port/,
  );
  assert.throws(
    () => compileMetricsOptions({ metricsPort: 0, metricsHost: "127.0.0.1", peakTflops: -3 }),
    /--peak-tflops/,
  );
  assert.throws(
    () => compileMetricsOptions({ metricsPort: 0, metricsHost: "127.0.0.1", metricsLingerS: -1 }),
    /--metrics-linger-s/,
  );
});

test(
  "metrics endpoint - train serves /metrics between steps, and its counters match metrics.jsonl",
  { timeout: 120_000 },
  async () => {
    const out = join(dir, "run");
    const data = writeSyntheticData(dir, 40, 3);
    const options = compileTrainOptions(
      parseTrainFlags([
        "--data",
        data,
        "--model",
        writeMicroModelConfig(dir),
        "--steps",
        "30",
        "--batch-size",
        "4",
        "--eval-every",
        "10",
        "--checkpoint-every",
        "10",
        "--out",
        out,
        "--backend",
        "wasm",
      ]),
    );
    let url = "";
    const scrapes: Promise<string>[] = [];
    await runTrainJob(
      options,
      (line) => {
        const match = /^metrics: (http:\/\/\S+)\/metrics/.exec(line);
        if (match?.[1]) url = match[1];
      },
      {
        // Scrapes are served while the job runs: the loop yields to the event loop after each step.
        onStep: (record) => {
          if (record.step === 12) scrapes.push(fetch(`${url}/metrics`).then((r) => r.text()));
        },
      },
      compileMetricsOptions({ metricsPort: 0, metricsHost: "127.0.0.1", peakTflops: 1 }),
    );
    const [text] = await Promise.all(scrapes);
    assert.ok(text, "scraped once");
    const seenStep = sample(text, 'imtrain_step{job="run"}');
    assert.ok(seenStep >= 12 && seenStep < 30, `the scrape came mid-run (step ${seenStep})`);
    const lines = readFileSync(join(out, "metrics.jsonl"), "utf8")
      .trim()
      .split("\n")
      .map(
        (line) =>
          JSON.parse(line) as { type: string; step: number; tokens: number; examples: number; flops: number },
      );
    const upTo = lines.filter((l) => l.type === "step" && l.step <= seenStep);
    assert.equal(
      sample(text, 'imtrain_tokens_total{job="run"}'),
      upTo.reduce((a, l) => a + l.tokens, 0),
    );
    assert.equal(
      sample(text, 'imtrain_examples_total{job="run"}'),
      upTo.reduce((a, l) => a + l.examples, 0),
    );
    assert.equal(sample(text, 'imtrain_optimizer_steps_total{job="run"}'), seenStep);
    const flops = upTo.reduce((a, l) => a + l.flops, 0);
    assert.ok(Math.abs(sample(text, 'imtrain_model_flops_total{job="run"}') - flops) <= 1e-9 * flops);
    assert.equal(sample(text, 'imtrain_planned_steps{job="run"}'), 30);
    assert.equal(sample(text, 'imtrain_peak_flops_per_second{rank="0",source="flag",job="run"}'), 1e12);
    assert.equal(sample(text, 'imtrain_last_checkpoint_step{job="run"}'), 10);
    assert.equal(sample(text, 'imtrain_job_state{state="running",job="run"}'), 1);
    assert.equal(sample(text, 'imtrain_workers_alive{job="run"}'), 1);
    const evals = lines.filter((l) => l.type === "eval" && l.step <= seenStep) as unknown as {
      eval_output_loss: number;
      overfitting_gap: number;
    }[];
    const lastEval = evals[evals.length - 1];
    assert.ok(lastEval);
    assert.equal(sample(text, 'imtrain_output_loss{split="held_out",job="run"}'), lastEval.eval_output_loss);
    assert.equal(sample(text, 'imtrain_overfitting_gap{job="run"}'), lastEval.overfitting_gap);
    assert.match(text, /^process_resident_memory_bytes\{job="run"\} \d+/m);
    assert.match(text, /^nodejs_eventloop_lag_seconds\{job="run"\} /m);
    assert.match(text, /^nodejs_gc_duration_seconds_count\{/m);
    assert.match(text, /^imtrain_step_phase_seconds_count\{job="run",rank="0",phase="checkpoint"\} 1$/m);
    assert.equal(
      lines
        .filter((l) => l.type === "checkpoint")
        .map((l) => l.step)
        .join(","),
      "10,20,30",
      "checkpoint lines in metrics.jsonl",
    );
  },
);

test(
  "metrics endpoint - with --metrics-linger-s the endpoint outlives the job: final state scraped, /healthz 503",
  { timeout: 120_000 },
  async () => {
    const out = join(dir, "linger");
    const options = compileTrainOptions(
      parseTrainFlags([
        "--data",
        writeSyntheticData(dir, 20, 5),
        "--model",
        writeMicroModelConfig(dir),
        "--steps",
        "3",
        "--batch-size",
        "4",
        "--out",
        out,
        "--backend",
        "wasm",
      ]),
    );
    let url = "";
    let final: Promise<[number, string, string]> | undefined;
    const started = Date.now();
    await runTrainJob(
      options,
      (line) => {
        url = /^metrics: (http:\/\/\S+)\/metrics/.exec(line)?.[1] ?? url;
        if (line.startsWith("keeping /metrics up 1.5 s"))
          final = Promise.all([
            fetch(`${url}/healthz`).then((r) => r.status),
            fetch(`${url}/healthz`).then((r) => r.text()),
            fetch(`${url}/metrics`).then((r) => r.text()),
          ]);
      },
      {},
      compileMetricsOptions({ metricsPort: 0, metricsHost: "127.0.0.1", peakTflops: 1, metricsLingerS: 1.5 }),
    );
    assert.ok(final, "the linger was announced");
    const [status, body, text] = await final;
    assert.equal(status, 503);
    assert.equal(body, "stopping: job finished\n");
    assert.equal(sample(text, 'imtrain_job_state{state="stopped",job="linger"}'), 1);
    assert.equal(sample(text, 'imtrain_step{job="linger"}'), 3);
    assert.ok(Date.now() - started >= 1500, "the job's call returned after the linger");
    await assert.rejects(fetch(`${url}/healthz`), "gone after the linger");
  },
);
