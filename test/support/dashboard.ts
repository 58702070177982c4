// The Grafana dashboard in deploy/grafana, read as data: its panels and their PromQL with the dashboard's
// variables filled in, so tests can check the JSON and run every query against a real Prometheus.
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, from dist/test/support/. */
const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");
export const DASHBOARD_FILE = join(ROOT, "deploy/grafana/imtrain-dashboard.json");

// Just the fields of Grafana's dashboard JSON model that tests read.
export interface DataSourceRef {
  readonly type?: string;
  readonly uid?: string;
}
export interface GridPos {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}
export interface PanelTarget {
  readonly refId: string;
  readonly expr?: string;
  readonly legendFormat?: string;
  readonly datasource?: DataSourceRef;
}
export interface Panel {
  readonly id: number;
  readonly type: string;
  readonly title: string;
  readonly description?: string;
  readonly datasource?: DataSourceRef;
  readonly gridPos: GridPos;
  readonly targets?: readonly PanelTarget[];
  readonly fieldConfig?: { readonly defaults?: { readonly unit?: string } };
  /** A collapsed row's panels. */
  readonly panels?: readonly Panel[];
}
export interface TemplateVariable {
  readonly name: string;
  readonly type: string;
  /** A string, or Grafana 10's {query, refId} object for a Prometheus query variable. */
  readonly query?: string | { readonly query?: string };
  readonly datasource?: DataSourceRef;
  readonly multi?: boolean;
  readonly includeAll?: boolean;
  readonly allValue?: string;
}
export interface Dashboard {
  readonly uid: string;
  readonly title: string;
  readonly schemaVersion: number;
  readonly templating: { readonly list: readonly TemplateVariable[] };
  readonly panels: readonly Panel[];
}

export function loadDashboard(file = DASHBOARD_FILE): Dashboard {
  return JSON.parse(readFileSync(file, "utf8")) as Dashboard;
}

/** Every panel, rows included, with a collapsed row's panels after the row itself. */
export function allPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

/** The query string of a template variable, whichever form it is stored in. */
export function variableQuery(variable: TemplateVariable): string | undefined {
  return typeof variable.query === "string" ? variable.query : variable.query?.query;
}

export interface DashboardVariables {
  readonly job: string;
  /** A regex, as Grafana's multi-value rank renders it: ".*" for All, "0" or "(0|2)" for a selection. */
  readonly rank: string;
  /** A PromQL duration such as "1m"; also stands in for $__interval and $__range. */
  readonly rateInterval: string;
}

/**
 * Replaces `$name` and `${name}` (and `${name:format}`) in a query. A variable it does not know throws,
 * so a new dashboard variable cannot reach Prometheus as literal text.
 */
export function substituteVariables(expr: string, vars: DashboardVariables): string {
  const values: Readonly<Record<string, string>> = {
    job: vars.job,
    rank: vars.rank,
    __rate_interval: vars.rateInterval,
    __interval: vars.rateInterval,
    __range: vars.rateInterval,
  };
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (match, braced?: string, bare?: string) => {
    const name = braced ?? bare ?? "";
    const value = values[name];
    if (value === undefined) throw new Error(`dashboard query uses unknown variable ${match}: ${expr}`);
    return value;
  });
}

export interface PanelQuery {
  readonly panel: string;
  readonly expr: string;
}

/** Every target of every panel that is not a row, with the variables filled in. */
export function panelQueries(dashboard: Dashboard, vars: DashboardVariables): PanelQuery[] {
  return allPanels(dashboard)
    .filter((panel) => panel.type !== "row")
    .flatMap((panel) =>
      (panel.targets ?? []).map((target) => ({
        panel: panel.title,
        expr: substituteVariables(target.expr ?? "", vars),
      })),
    );
}
