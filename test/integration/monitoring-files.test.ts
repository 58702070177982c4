// deploy/prometheus and deploy/grafana checked as far as is possible without a training run: promtool
// validates the config and the rules and runs the alert unit tests, a real Prometheus loads the rules
// and parses every dashboard query, and the dashboard's JSON keeps the shape Grafana and the e2e test
// rely on. Every metric name used is one the code registers (read from a real registry).
// Needs promtool and prometheus (Debian's prometheus package): off CI they skip, in CI they fail.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { Histogram } from "prom-client";
import { parse } from "yaml";
import { JobMetrics } from "../../coordinator/job-metrics.js";
import { ProcessMetrics } from "../../shared/metrics/process-metrics.js";
import { RankMetrics } from "../../shared/metrics/rank-metrics.js";
import { createMetricsRegistry } from "../../shared/metrics/registry.js";
import {
  allPanels,
  loadDashboard,
  panelQueries,
  variableQuery,
  type GridPos,
  type Panel,
} from "../support/dashboard.js";
import {
  requirePrometheus,
  requirePromtool,
  startPrometheus,
  type LoadedRule,
} from "../support/prometheus.js";

/** The repository root, from dist/test/integration/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const PROMETHEUS_DIR = join(ROOT, "deploy/prometheus");
const CONFIG_FILE = join(PROMETHEUS_DIR, "prometheus.yml");
const ALERTS_FILE = join(PROMETHEUS_DIR, "alerts.yml");
const ALERTS_TEST_FILE = join(PROMETHEUS_DIR, "alerts.test.yml");

/**
 * Every imtrain metric the code registers, read from a registry holding all of them (the job's, a rank's
 * and a process's), so the dashboard and rules are checked against what is really exported.
 */
function exportedMetrics(): { names: Set<string>; histograms: Set<string>; ranked: Set<string> } {
  const registry = createMetricsRegistry("files");
  const process = new ProcessMetrics(registry, {
    version: "0",
    backend: "wasm",
    device: "cpu",
    adapter: "",
    model: "tiny",
    role: "train",
    rank: "0",
  });
  new JobMetrics(registry, process);
  new RankMetrics(registry);
  const metrics = registry.getMetricsAsArray().filter((m) => m.name.startsWith("imtrain_"));
  const labels = (m: (typeof metrics)[number]) =>
    (m as unknown as { labelNames: readonly string[] }).labelNames;
  return {
    names: new Set(metrics.map((m) => m.name)),
    histograms: new Set(metrics.filter((m) => m instanceof Histogram).map((m) => m.name)),
    ranked: new Set(metrics.filter((m) => labels(m).includes("rank")).map((m) => m.name)),
  };
}
const EXPORTED = exportedMetrics();
const CONTRACT_METRICS = EXPORTED.names;
const CONTRACT_HISTOGRAMS = EXPORTED.histograms;
/** Metrics with a `rank` label: a dashboard query on one must follow the rank variable. */
const RANK_METRICS = EXPORTED.ranked;
/** Rank metrics that a panel sums over every rank on purpose, whatever ranks are selected. */
const ALL_RANKS_ON_PURPOSE: Readonly<Record<string, string>> = {
  imtrain_peak_flops_per_second: "MFU divides the whole job's FLOP/s by the peak of every rank",
};

// Just the fields of the rule and rule-test files these tests read.
interface AlertRule {
  readonly alert?: string;
  readonly record?: string;
  readonly expr: string;
  readonly for?: string;
  readonly labels?: Readonly<Record<string, string>>;
  readonly annotations?: Readonly<Record<string, string>>;
}
interface RuleFile {
  readonly groups: readonly { readonly name: string; readonly rules: readonly AlertRule[] }[];
}
interface RuleTestFile {
  readonly rule_files: readonly string[];
  readonly tests: readonly {
    readonly alert_rule_test?: readonly {
      readonly alertname: string;
      readonly exp_alerts?: readonly unknown[];
    }[];
  }[];
}
interface ScrapeConfig {
  readonly job_name: string;
  readonly honor_labels?: boolean;
  readonly file_sd_configs?: readonly { readonly files: readonly string[] }[];
}
interface PrometheusConfig {
  readonly global?: { readonly scrape_interval?: string };
  readonly rule_files?: readonly string[];
  readonly scrape_configs?: readonly ScrapeConfig[];
}

function readYaml<T>(file: string): T {
  return parse(readFileSync(file, "utf8")) as T;
}

function alertRules(): AlertRule[] {
  return readYaml<RuleFile>(ALERTS_FILE).groups.flatMap((group) => group.rules.filter((rule) => rule.alert));
}

function promtool(binary: string, args: readonly string[]): { status: number | null; output: string } {
  const result = spawnSync(binary, args, { cwd: ROOT, encoding: "utf8", timeout: 60_000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** imtrain metric names in a PromQL expression, histogram suffixes removed. */
function metricNames(expr: string): string[] {
  return [...expr.matchAll(/\bimtrain_[a-z_]+/g)].map(([name]) => {
    const base = name.replace(/_(bucket|sum|count)$/, "");
    return CONTRACT_HISTOGRAMS.has(base) ? base : name;
  });
}

/** Each metric selector in an expression: the metric's name and its {…} matchers ("" when it has none). */
function selectors(expr: string): { name: string; matchers: string }[] {
  return [...expr.matchAll(/\b((?:imtrain|process|nodejs)_[a-z0-9_]+)(\{[^}]*\})?/g)].map((match) => ({
    name: match[1] ?? "",
    matchers: match[2] ?? "",
  }));
}

function overlaps(a: GridPos, b: GridPos): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

const contentPanels = (): Panel[] => allPanels(loadDashboard()).filter((panel) => panel.type !== "row");

test("prometheus.yml - promtool check config passes and finds alerts.yml", { timeout: 60_000 }, (t) => {
  const binary = requirePromtool(t);
  if (binary === undefined) return;
  const result = promtool(binary, ["check", "config", CONFIG_FILE]);
  assert.equal(result.status, 0, result.output);
  assert.match(result.output, /SUCCESS: 1 rule files found/);
  assert.doesNotMatch(result.output, /FAILED/);
});

test("prometheus.yml - keeps the imtrain job label and reads launch's metrics-targets.json", () => {
  const config = readYaml<PrometheusConfig>(CONFIG_FILE);
  assert.equal(config.global?.scrape_interval, "5s");
  assert.deepEqual(config.rule_files, ["alerts.yml"]);
  const scrape = config.scrape_configs?.find((c) => c.job_name === "imtrain");
  assert.ok(scrape, "a scrape job named imtrain");
  assert.equal(scrape.honor_labels, true, "the series' own job label must win over the scrape job's");
  const files = scrape.file_sd_configs?.flatMap((sd) => sd.files) ?? [];
  assert.ok(files.length > 0);
  for (const file of files) assert.match(file, /^\.\.\/\.\.\/runs\/[^/*]+\/metrics-targets\.json$/);
});

test("alerts.yml - promtool check rules passes", { timeout: 60_000 }, (t) => {
  const binary = requirePromtool(t);
  if (binary === undefined) return;
  const result = promtool(binary, ["check", "rules", ALERTS_FILE]);
  assert.equal(result.status, 0, result.output);
  assert.match(result.output, new RegExp(`SUCCESS: ${alertRules().length} rules found`));
});

test("alerts.test.yml - promtool test rules passes", { timeout: 60_000 }, (t) => {
  const binary = requirePromtool(t);
  if (binary === undefined) return;
  const result = promtool(binary, ["test", "rules", ALERTS_TEST_FILE]);
  assert.equal(result.status, 0, result.output);
  assert.match(result.output, /SUCCESS/);
});

test("alerts.test.yml - every alert has a case that fires it and one that does not", () => {
  const tests = readYaml<RuleTestFile>(ALERTS_TEST_FILE);
  assert.deepEqual(tests.rule_files, ["alerts.yml"]);
  const cases = tests.tests.flatMap((t) => t.alert_rule_test ?? []);
  const names = alertRules().map((rule) => rule.alert);
  for (const name of names) {
    const own = cases.filter((c) => c.alertname === name);
    assert.ok(
      own.some((c) => (c.exp_alerts ?? []).length > 0),
      `${name}: no case in which it fires`,
    );
    assert.ok(
      own.some((c) => (c.exp_alerts ?? []).length === 0),
      `${name}: no case in which it stays quiet`,
    );
  }
  for (const c of cases)
    assert.ok(names.includes(c.alertname), `a test case for unknown alert ${c.alertname}`);
});

test("alerts.yml - every alert waits `for`, has a severity, and says which job in its summary and description", () => {
  const rules = alertRules();
  assert.equal(rules.length, 6);
  for (const rule of rules) {
    assert.match(rule.alert ?? "", /^Imtrain[A-Z]\w+$/);
    assert.ok(rule.for !== undefined, `${rule.alert}: for`);
    assert.ok(["critical", "warning"].includes(rule.labels?.["severity"] ?? ""), `${rule.alert}: severity`);
    assert.match(rule.annotations?.["summary"] ?? "", /\{\{ \$labels\.job \}\}/, `${rule.alert}: summary`);
    assert.match(
      rule.annotations?.["description"] ?? "",
      /\{\{ \$labels\.job \}\}/,
      `${rule.alert}: description`,
    );
  }
});

test("dashboard - stable uid and title, and the datasource, job and rank variables", () => {
  const dashboard = loadDashboard();
  assert.equal(dashboard.uid, "imtrain-training");
  assert.equal(dashboard.title, "imtrain training");
  assert.ok(dashboard.schemaVersion >= 36);
  const variables = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  assert.deepEqual([...variables.keys()], ["datasource", "job", "rank"]);
  const datasource = variables.get("datasource");
  assert.equal(datasource?.type, "datasource");
  assert.equal(datasource?.query, "prometheus");
  const job = variables.get("job");
  assert.equal(job?.type, "query");
  assert.equal(job && variableQuery(job), "label_values(imtrain_build_info, job)");
  const rank = variables.get("rank");
  assert.equal(rank?.type, "query");
  assert.equal(rank && variableQuery(rank), 'label_values(imtrain_build_info{job="$job"}, rank)');
  assert.equal(rank?.multi, true);
  assert.equal(rank?.includeAll, true);
  assert.equal(rank?.allValue, ".*");
  for (const v of [job, rank]) assert.deepEqual(v?.datasource, { type: "prometheus", uid: "${datasource}" });
});

test("dashboard - every panel queries the datasource variable and has a description and a unit", () => {
  for (const panel of contentPanels()) {
    assert.deepEqual(panel.datasource, { type: "prometheus", uid: "${datasource}" }, panel.title);
    assert.ok(
      (panel.description ?? "").length > 40,
      `${panel.title}: a description of what it shows and what is bad`,
    );
    assert.ok(panel.fieldConfig?.defaults?.unit, `${panel.title}: a unit`);
    assert.ok((panel.targets ?? []).length > 0, `${panel.title}: a query`);
    for (const target of panel.targets ?? [])
      assert.ok(target.expr, `${panel.title} ${target.refId}: an expr`);
  }
});

test('dashboard - every query selects job="$job", rank=~"$rank" where the metric has ranks, and rates over $__rate_interval', () => {
  for (const panel of contentPanels()) {
    for (const { expr = "" } of panel.targets ?? []) {
      const where = `${panel.title}: ${expr}`;
      for (const { name, matchers } of selectors(expr)) {
        assert.match(matchers, /job="\$job"/, `${name} without job="$job" in ${where}`);
        if (RANK_METRICS.has(name.replace(/_(bucket|sum|count)$/, "")) && !(name in ALL_RANKS_ON_PURPOSE))
          assert.match(matchers, /rank=~"\$rank"/, `${name} without rank=~"$rank" in ${where}`);
      }
      for (const [, range] of expr.matchAll(/\b(?:rate|irate|increase)\([^[]*\[([^\]]+)\]/g))
        assert.equal(range, "$__rate_interval", where);
    }
  }
});

test("dashboard - no two panels overlap, and each fits the 24-column grid", () => {
  const panels = allPanels(loadDashboard());
  for (const [i, a] of panels.entries()) {
    assert.ok(a.gridPos.x >= 0 && a.gridPos.x + a.gridPos.w <= 24, `${a.title}: outside the grid`);
    for (const b of panels.slice(i + 1))
      assert.ok(!overlaps(a.gridPos, b.gridPos), `"${a.title}" overlaps "${b.title}"`);
  }
  const ids = panels.map((panel) => panel.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
});

test("dashboard and alerts - every metric they use is one the code exports", () => {
  const dashboard = loadDashboard();
  const exprs = [
    ...allPanels(dashboard).flatMap((panel) => (panel.targets ?? []).map((target) => target.expr ?? "")),
    ...dashboard.templating.list.map((v) => variableQuery(v) ?? ""),
    ...alertRules().map((rule) => rule.expr),
  ];
  const used = new Set(exprs.flatMap(metricNames));
  const unknown = [...used].filter((name) => !CONTRACT_METRICS.has(name));
  assert.deepEqual(unknown, [], "metrics that are not in the metrics contract");
  // Node's default metrics come from prom-client: each name used must be one it defines.
  const promClientDir = join(ROOT, "node_modules/prom-client/lib/metrics");
  const promClientSource = readdirSync(promClientDir)
    .filter((file) => file.endsWith(".js"))
    .map((file) => readFileSync(join(promClientDir, file), "utf8"))
    .join("\n");
  const nodeNames = new Set(
    exprs
      .flatMap((expr) => selectors(expr).map((s) => s.name))
      .filter((name) => !name.startsWith("imtrain_")),
  );
  assert.ok(nodeNames.size > 0);
  for (const name of nodeNames)
    assert.ok(promClientSource.includes(`'${name}'`), `${name}: not a prom-client default`);
});

test(
  "alerts.yml - a real Prometheus loads and evaluates every rule without error",
  { timeout: 60_000 },
  async (t) => {
    const binary = requirePrometheus(t);
    if (binary === undefined) return;
    const prometheus = await startPrometheus(
      binary,
      `global:\n  evaluation_interval: 1s\nrule_files:\n  - ${JSON.stringify(ALERTS_FILE)}\n`,
    );
    t.after(() => prometheus.stop());
    const loaded = async (): Promise<LoadedRule[]> =>
      (await prometheus.rules()).flatMap((group) => group.rules);
    // Health is "unknown" until a rule's first evaluation, a second after start; an error shows only then.
    const deadline = Date.now() + 15_000;
    let rules = await loaded();
    while (rules.some((rule) => rule.health === "unknown") && Date.now() < deadline) {
      await sleep(200);
      rules = await loaded();
    }
    assert.deepEqual(
      rules.map((rule) => rule.name).sort(),
      alertRules()
        .map((rule) => rule.alert)
        .sort(),
    );
    for (const rule of rules) assert.notEqual(rule.health, "err", `${rule.name}: ${rule.lastError ?? ""}`);
  },
);

test(
  "dashboard - a real Prometheus parses and evaluates every panel query",
  { timeout: 60_000 },
  async (t) => {
    const binary = requirePrometheus(t);
    if (binary === undefined) return;
    const prometheus = await startPrometheus(binary, "global:\n  scrape_interval: 5s\n");
    t.after(() => prometheus.stop());
    const queries = panelQueries(loadDashboard(), { job: "demo", rank: "(0|1)", rateInterval: "1m" });
    assert.ok(queries.length > 20);
    for (const { panel, expr } of queries) {
      assert.doesNotMatch(expr, /\$/, `${panel}: a variable left in ${expr}`);
      await assert.doesNotReject(prometheus.query(expr), `${panel}: ${expr}`);
    }
  },
);
