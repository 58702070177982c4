// deploy/k8s/components/monitoring's generated objects, each from its one source: the PrometheusRule's
// groups are deploy/prometheus/alerts.yml's, and the Grafana ConfigMap's data is
// deploy/grafana/imtrain-dashboard.json byte for byte. kustomize loads no file from outside its
// kustomization's directory, so the objects are committed and this test fails when they are not what the
// sources generate now. To write them again:
//   npx tsc -p tsconfig.json && K8S_WRITE_MONITORING=1 node --test dist/test/integration/k8s-monitoring.test.js
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { format, resolveConfig } from "prettier";
import { parse, stringify } from "yaml";

/** The repository root, from dist/test/integration/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
const ALERTS_FILE = join(ROOT, "deploy/prometheus/alerts.yml");
const DASHBOARD_FILE = join(ROOT, "deploy/grafana/imtrain-dashboard.json");
/** The key of the dashboard in its ConfigMap: Grafana's sidecar names the file after it. */
const DASHBOARD_KEY = "imtrain-dashboard.json";
const MONITORING_DIR = join(ROOT, "deploy/k8s/components/monitoring");
const WRITE = process.env["K8S_WRITE_MONITORING"] === "1";

const LABELS = { "app.kubernetes.io/name": "imtrain", "app.kubernetes.io/component": "monitoring" };

function header(source: string): string {
  return (
    `# Generated from ${relative(ROOT, source)} by test/integration/k8s-monitoring.test.ts` +
    ` (K8S_WRITE_MONITORING=1): edit the source, not this file.\n`
  );
}

/** Formatted as `prettier --check .` expects, so the generated files pass it as they are. */
async function prettierYaml(file: string, text: string): Promise<string> {
  return format(text, { ...(await resolveConfig(file)), filepath: file });
}

/** The PrometheusRule: alerts.yml's groups, unchanged. */
function prometheusRule(): string {
  const alerts = parse(readFileSync(ALERTS_FILE, "utf8")) as { groups: unknown[] };
  const rule = {
    apiVersion: "monitoring.coreos.com/v1",
    kind: "PrometheusRule",
    metadata: { name: "imtrain", labels: LABELS },
    spec: { groups: alerts.groups },
  };
  return header(ALERTS_FILE) + stringify(rule, { lineWidth: 0 });
}

/** The dashboard's ConfigMap, labelled for Grafana's sidecar, holding the JSON file's bytes. */
function dashboardConfigMap(): string {
  const dashboard = readFileSync(DASHBOARD_FILE, "utf8");
  const configMap = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "imtrain-dashboard", labels: { ...LABELS, grafana_dashboard: "1" } },
    data: { [DASHBOARD_KEY]: dashboard },
  };
  const text = header(DASHBOARD_FILE) + stringify(configMap, { lineWidth: 0, blockQuote: "literal" });
  // A block scalar keeps the text only if it has no trailing spaces and ends in one newline.
  const back = (parse(text) as typeof configMap).data[DASHBOARD_KEY];
  assert.equal(back, dashboard, `${DASHBOARD_FILE} does not survive YAML: its ConfigMap would differ`);
  return text;
}

const GENERATED: readonly { readonly file: string; readonly generate: () => string }[] = [
  { file: join(MONITORING_DIR, "prometheus-rule.yaml"), generate: prometheusRule },
  { file: join(MONITORING_DIR, "grafana-dashboard.yaml"), generate: dashboardConfigMap },
];

for (const { file, generate } of GENERATED) {
  test(`deploy/k8s monitoring - ${relative(ROOT, file)} is what its source generates`, async () => {
    const expected = await prettierYaml(file, generate());
    if (WRITE) writeFileSync(file, expected);
    assert.equal(
      readFileSync(file, "utf8"),
      expected,
      `${relative(ROOT, file)} is out of date: run K8S_WRITE_MONITORING=1 node --test dist/test/integration/k8s-monitoring.test.js`,
    );
  });
}
