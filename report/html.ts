// The report page: one self-contained HTML file (inline CSS and SVG, no scripts to run, nothing fetched),
// so it opens offline and can be mailed or attached as it is.
import type { RunFacts } from "./run-facts.js";
import { FONT } from "./chart-options.js";
import * as format from "./format.js";

export interface PageRun {
  readonly label: string;
  readonly dir: string;
  readonly colour: string;
  readonly updatedAt: Date;
  readonly facts: RunFacts;
  readonly skippedLastLine: boolean;
}

export interface PageChart {
  readonly id: string;
  readonly svg: string;
  readonly caption: string;
}

export interface ReportPage {
  readonly generatedAt: Date;
  readonly runs: readonly PageRun[];
  /** Charts and notes in page order; a note stands where a chart could not be drawn. */
  readonly sections: readonly (PageChart | { readonly note: string })[];
  /** Embedded as JSON for tools: <script type="application/json" id="imtrain-report-data">. */
  readonly data: unknown;
}

export const DATA_ELEMENT_ID = "imtrain-report-data";

export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (char) => `&#${char.charCodeAt(0)};`);

/** JSON that cannot end the <script> element it sits in ("</script>", "<!--"); JSON.parse reads it back unchanged. */
export const embeddedJson = (data: unknown) => JSON.stringify(data).replace(/</g, "\\u003c");

export const STYLE = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f6f8fa; color: #1f2328;
  font: 14px/1.45 ${FONT}; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 40px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 0 0 10px; }
.meta { color: #57606a; margin: 0 0 16px; }
.card { background: #fff; border: 1px solid #d0d7de; border-radius: 8px; padding: 14px 16px; margin: 0 0 18px; }
.chart { padding: 6px; }
.chart svg { display: block; width: 100%; height: auto; }
ul.runs { list-style: none; padding: 0; margin: 0; }
ul.runs li { margin: 3px 0; }
.swatch { display: inline-block; width: 12px; height: 12px; border-radius: 3px; margin-right: 6px;
  vertical-align: -1px; }
.path, .when { color: #57606a; }
.path { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: 13px; }
th, td { padding: 6px 7px; border-bottom: 1px solid #d8dee4; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; font-weight: 600; white-space: normal; vertical-align: bottom; }
th.num, td.num { text-align: right; font-variant-numeric: tabular-nums; }
.status-running { color: #9a6700; }
.note { color: #57606a; margin: 0; }
.caption { color: #57606a; margin: 2px 10px 6px; font-size: 13px; }
`;

interface Column {
  readonly title: string;
  readonly numeric: boolean;
  readonly cell: (run: PageRun) => string;
}

const COLUMNS: readonly Column[] = [
  { title: "run", numeric: false, cell: (run) => run.label },
  { title: "loss mode", numeric: false, cell: (run) => format.formatLossMode(run.facts.promptLossWeight) },
  {
    title: "template weight",
    numeric: true,
    cell: (run) => format.formatWeight(run.facts.templateLossWeight),
  },
  {
    title: "instruction / output",
    numeric: true,
    cell: (run) => format.formatRatio(run.facts.instructionOutputRatio),
  },
  { title: "model", numeric: false, cell: (run) => run.facts.model ?? format.MISSING },
  { title: "parameters", numeric: true, cell: (run) => format.formatCount(run.facts.modelParameters) },
  {
    title: "steps",
    numeric: true,
    cell: (run) => format.formatSteps(run.facts.completedSteps, run.facts.plannedSteps),
  },
  {
    title: "final train loss",
    numeric: true,
    cell: (run) => format.formatLoss(run.facts.finalTrainOutputLoss),
  },
  {
    title: "final held-out loss",
    numeric: true,
    cell: (run) => format.formatLoss(run.facts.finalHeldOutLoss),
  },
  { title: "final gap", numeric: true, cell: (run) => format.formatGap(run.facts.finalGap) },
  { title: "tokens/s", numeric: true, cell: (run) => format.formatInteger(run.facts.tokensPerS) },
  { title: "elapsed", numeric: true, cell: (run) => format.formatDuration(run.facts.elapsedS) },
];

function swatch(colour: string): string {
  return `<span class="swatch" style="background:${escapeHtml(colour)}"></span>`;
}

function runList(runs: readonly PageRun[]): string {
  const items = runs.map((run) => {
    const status = run.facts.status;
    const statusClass = status === "finished" ? "" : ' class="status-running"';
    const partial = run.skippedLastLine ? "; last line of metrics.jsonl incomplete, left out" : "";
    return (
      `<li>${swatch(run.colour)}<strong>${escapeHtml(run.label)}</strong> ` +
      `<span class="path">${escapeHtml(run.dir)}</span> · <span${statusClass}>${status}</span>` +
      ` · <span class="when">metrics last written ${format.formatTime(run.updatedAt)}${partial}</span></li>`
    );
  });
  return `<ul class="runs">${items.join("")}</ul>`;
}

function runTable(runs: readonly PageRun[]): string {
  const head = COLUMNS.map(
    (column) => `<th${column.numeric ? ' class="num"' : ""}>${escapeHtml(column.title)}</th>`,
  ).join("");
  const rows = runs.map((run) => {
    const cells = COLUMNS.map((column, index) => {
      const text = escapeHtml(column.cell(run));
      const content = index === 0 ? swatch(run.colour) + text : text;
      return `<td${column.numeric ? ' class="num"' : ""}>${content}</td>`;
    });
    return `<tr>${cells.join("")}</tr>`;
  });
  return `<div class="scroll"><table><thead><tr>${head}</tr></thead><tbody>${rows.join("")}</tbody></table></div>`;
}

function section(part: ReportPage["sections"][number]): string {
  return "note" in part
    ? `<section class="card"><p class="note">${escapeHtml(part.note)}</p></section>`
    : `<section class="card chart" id="chart-${escapeHtml(part.id)}">${part.svg}` +
        `<p class="caption">${escapeHtml(part.caption)}</p></section>`;
}

export function reportPage(page: ReportPage): string {
  const names = page.runs.map((run) => run.label).join(" vs ");
  const count = page.runs.length === 1 ? "1 run" : `${page.runs.length} runs`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="imtrain report">
<title>imtrain report: ${escapeHtml(names)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<header>
<h1>imtrain report: ${escapeHtml(names)}</h1>
<p class="meta">${count} · generated ${format.formatTime(page.generatedAt)}</p>
</header>
<section class="card">
<h2>Runs</h2>
${runList(page.runs)}
</section>
<section class="card">
<h2>Summary</h2>
${runTable(page.runs)}
<p class="note">Losses are mean cross-entropy on output tokens (nats per token). Gap = held-out − train-subset loss at the last eval. — : not recorded by this run${page.runs.some((run) => run.facts.status !== "finished") ? "; a run without summary.json shows what metrics.jsonl holds so far" : ""}.</p>
</section>
${page.sections.map(section).join("\n")}
<script type="application/json" id="${DATA_ELEMENT_ID}">${embeddedJson(page.data)}</script>
</main>
</body>
</html>
`;
}
