// Watching a real run as a user would: `imtrain launch --workers 2` over a real nats-server with
// --metrics-port 0, a real Prometheus started with the shipped scrape config (deploy/prometheus/) and the
// shipped alert rules, finding the run through the targets file launch writes. Through Prometheus's HTTP
// API every dashboard panel's query and every dashboard variable returns data; promtool accepts each
// endpoint's text; /healthz answers; and the run still drains cleanly on SIGTERM.
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { startCli } from "../support/cli.js";
import { loadDashboard, panelQueries, variableQuery } from "../support/dashboard.js";
import { requireNatsServer, startNatsServer } from "../support/nats.js";
import {
  requirePrometheus,
  requirePromtool,
  startPrometheus,
  type PrometheusHandle,
} from "../support/prometheus.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const JOB = "watched";

/** The shipped scrape config, pointed at this run's targets file and the shipped rules, scraping every second. */
function scrapeConfig(targetsFile: string): string {
  const config = parseYaml(readFileSync(join(ROOT, "deploy/prometheus/prometheus.yml"), "utf8")) as {
    global: Record<string, string>;
    rule_files: string[];
    scrape_configs: { file_sd_configs: { files: string[]; refresh_interval?: string }[] }[];
  };
  config.global["scrape_interval"] = "1s";
  config.global["evaluation_interval"] = "1s";
  config.rule_files = config.rule_files.map((file) => join(ROOT, "deploy/prometheus", file));
  const sd = config.scrape_configs[0]?.file_sd_configs[0];
  assert.ok(sd, "the shipped config discovers targets from a file");
  sd.files = [targetsFile];
  return stringifyYaml(config);
}

/** Polls until `check` returns no complaints, or fails after `timeoutMs` with the last ones. */
async function eventually(what: string, timeoutMs: number, check: () => Promise<string[]>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let complaints: string[] = [];
  while (Date.now() < deadline) {
    complaints = await check();
    if (complaints.length === 0) return;
    await sleep(500);
  }
  assert.fail(`${what} within ${timeoutMs} ms; still:\n  ${complaints.join("\n  ")}`);
}

async function emptyPanels(prometheus: PrometheusHandle): Promise<string[]> {
  const queries = panelQueries(loadDashboard(), { job: JOB, rank: ".*", rateInterval: "10s" });
  const empty: string[] = [];
  for (const { panel, expr } of queries) {
    const result = await prometheus.query(expr);
    if (result.length === 0) empty.push(`${panel}: ${expr}`);
  }
  return empty;
}

test(
  "monitoring - a real Prometheus scrapes a real launch: every dashboard panel has data, promtool accepts the endpoints",
  { timeout: 240_000 },
  async (t) => {
    const natsBinary = requireNatsServer(t);
    const prometheusBinary = requirePrometheus(t);
    const promtool = requirePromtool(t);
    if (!natsBinary || !prometheusBinary || !promtool) return;
    const dir = tempDir("monitoring");
    const out = join(dir, JOB);
    const nats = await startNatsServer(natsBinary);
    t.after(() => nats.stop());
    const launch = startCli([
      "launch",
      "--workers",
      "2",
      "--nats",
      nats.url,
      "--job",
      JOB,
      "--metrics-port",
      "0",
      "--data",
      writeSyntheticData(dir, 60, 2),
      "--model",
      writeMicroModelConfig(dir),
      "--steps",
      "100000",
      "--batch-size",
      "4",
      "--eval-every",
      "5",
      "--eval-examples",
      "8",
      "--checkpoint-every",
      "20",
      "--backend",
      "wasm",
      "--out",
      out,
    ]);
    t.after(() => launch.child.kill("SIGKILL"));
    await launch.waitFor(/launch: Prometheus targets in /, 60_000);
    const targetsFile = join(out, "metrics-targets.json");
    const [group] = JSON.parse(readFileSync(targetsFile, "utf8")) as { targets: string[] }[];
    assert.equal(group?.targets.length, 3, "the coordinator and two workers");
    const prometheus = await startPrometheus(prometheusBinary, scrapeConfig(targetsFile));
    t.after(() => prometheus.stop());
    await launch.waitFor(/\[coordinator\] eval @5/, 90_000);

    await eventually("all three targets up", 30_000, async () =>
      (await prometheus.targets())
        .filter((target) => target.health !== "up")
        .map((x) => `${x.scrapeUrl}: ${x.health} ${x.lastError}`),
    );
    await eventually("every dashboard panel returning data", 60_000, () => emptyPanels(prometheus));

    // The dashboard's variables: label_values(METRIC, LABEL) must find the job and both ranks.
    const variables = loadDashboard().templating.list.filter((v) => v.type === "query");
    for (const variable of variables) {
      const match = /^label_values\((.+),\s*(\w+)\)$/.exec(variableQuery(variable) ?? "");
      assert.ok(match?.[1] && match[2], `variable ${variable.name}: ${variableQuery(variable)}`);
      const selector = match[1].replace(/\$job/g, JOB);
      const values = new Set((await prometheus.query(selector)).map((r) => r.metric[match[2] ?? ""]));
      if (variable.name === "job") assert.ok(values.has(JOB), `${[...values].join(",")}`);
      if (variable.name === "rank") assert.ok(values.has("0") && values.has("1"), `${[...values].join(",")}`);
    }
    // The job label is the run's own (honor_labels), and the figures are the run's.
    const [info] = await prometheus.query(`imtrain_build_info{job="${JOB}",role="coordinator"}`);
    assert.ok(info, "the coordinator's build info");
    const [lambda] = await prometheus.query(`imtrain_prompt_loss_weight{job="${JOB}"}`);
    assert.equal(lambda?.value[1], "0");
    // Every phase, the checkpoint's included (the first is at step 20, later on a loaded machine).
    const allPhases = ["allreduce", "checkpoint", "data", "eval", "forward_backward", "optimizer", "wait"];
    await eventually("every phase observed", 90_000, async () => {
      const phases = await prometheus.query(
        `sum by (phase) (imtrain_step_phase_seconds_count{job="${JOB}"})`,
      );
      const seen = new Set(phases.map((p) => p.metric["phase"]));
      return allPhases.filter((phase) => !seen.has(phase));
    });
    // The shipped rules evaluate on the real series without errors.
    for (const rule of (await prometheus.rules()).flatMap((g) => g.rules))
      assert.notEqual(rule.health, "err", `${rule.name}: ${rule.lastError ?? ""}`);

    // Each endpoint: promtool's lint is clean, and /healthz is 200 while the job runs.
    for (const target of group?.targets ?? []) {
      const text = await (await fetch(`http://${target}/metrics`)).text();
      const lint: SpawnSyncReturns<string> = spawnSync(promtool, ["check", "metrics"], {
        input: text,
        encoding: "utf8",
        timeout: 30_000,
      });
      assert.equal(lint.status, 0, `promtool check metrics on ${target}:\n${lint.stdout}${lint.stderr}`);
      assert.equal((await fetch(`http://${target}/healthz`)).status, 200, target);
    }

    launch.child.kill("SIGTERM");
    assert.equal(await launch.exit, 0, launch.stderr.slice(-3000));
    assert.ok(existsSync(join(out, "checkpoint", "model.safetensors")), "drained with a checkpoint");
  },
);
