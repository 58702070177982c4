// An experiment's report: one self-contained HTML page of its charts (experiment-charts.ts), the BLEU
// overlap table (the paper's: generations on training prompts against the training outputs), the means per
// grid cell, the fits `analyze` recommends from, the failed runs, and results.json embedded.
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { atBaseKnobs, regulariserEffects, spread } from "../experiment/analysis.js";
import { writeFileSynced } from "../shared/model/checkpoint-manifest.js";
import type { ExperimentResults, Spread } from "../experiment/results.js";
import { experimentCharts } from "./experiment-charts.js";
import { embeddedJson, escapeHtml, STYLE } from "./html.js";
import { renderSvg } from "./render-svg.js";

export const EXPERIMENT_DATA_ELEMENT_ID = "imtrain-experiment-data";

const number = (value: number, digits: number) => (Number.isFinite(value) ? value.toFixed(digits) : "—");
const meanStd = (s: Spread, digits: number) => `${number(s.mean, digits)} ± ${number(s.std, digits)}`;

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const th = head.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const tr = rows.map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join("")}</tr>`);
  return `<div class="scroll"><table><thead><tr>${th}</tr></thead><tbody>${tr.join("")}</tbody></table></div>`;
}

/** IT vs IM BLEU per data set and size at the base knobs, over seeds (lower = less copying of the training outputs). */
function bleuTable(results: ExperimentResults): string {
  const done = atBaseKnobs(results.runs.filter((r) => r.status === "done"));
  const keys = [...new Set(done.map((r) => `${r.params.dataset}\t${r.params.trainExamples}`))];
  const rows = keys.map((key) => {
    const [dataset, size] = key.split("\t");
    const at = (lambda: number) =>
      done.filter(
        (r) =>
          r.params.dataset === dataset &&
          String(r.params.trainExamples) === size &&
          r.params.promptLossWeight === lambda,
      );
    const it = at(0);
    const im = at(1);
    return [
      dataset ?? "",
      size ?? "",
      meanStd(spread(it.map((r) => r.bleu)), 2),
      meanStd(spread(im.map((r) => r.bleu)), 2),
      `${it.length} / ${im.length}`,
    ];
  });
  return table(["data set", "training examples", "IT BLEU", "IM BLEU", "runs (IT / IM)"], rows);
}

/** KL and NEFTune against neither, paired by seed (analysis.regulariserEffects); empty without them. */
function regularisersTable(results: ExperimentResults): string {
  const rows = regulariserEffects(results.runs).map((e) => [
    e.params.dataset,
    String(e.params.trainExamples),
    String(e.params.promptLossWeight),
    String(e.params.klWeight),
    String(e.params.neftuneAlpha),
    String(e.seeds),
    meanStd(e.heldOut, 4),
    meanStd(e.gap, 4),
  ]);
  if (rows.length === 0) return "";
  return table(
    [
      "data set",
      "examples",
      "λ",
      "KL",
      "NEFTune α",
      "seeds",
      "held-out output loss − without",
      "held-out − train gap − without",
    ],
    rows,
  );
}

function aggregatesTable(results: ExperimentResults): string {
  const rows = results.aggregates.map((a) => [
    a.params.dataset,
    String(a.params.trainExamples),
    String(a.params.promptLossWeight),
    String(a.params.templateLossWeight),
    String(a.params.klWeight),
    String(a.params.neftuneAlpha),
    String(a.seeds),
    number(a.instructionOutputRatio, 2),
    meanStd(a.trainOutputLoss, 4),
    meanStd(a.heldOutOutputLoss, 4),
    meanStd(a.bleu, 2),
  ]);
  return table(
    [
      "data set",
      "examples",
      "λ",
      "template w.",
      "KL",
      "NEFTune α",
      "seeds",
      "ratio",
      "train output loss",
      "held-out output loss",
      "BLEU",
    ],
    rows,
  );
}

function fitsTable(results: ExperimentResults): string {
  const rows = results.fits.map((f) => [
    String(f.promptLossWeight),
    number(f.intercept, 4),
    number(f.perLogRatio, 4),
    number(f.perLogExamples, 4),
    String(f.points),
    number(f.rSquared, 3),
  ]);
  return table(["λ", "intercept", "per ln(ratio)", "per ln(examples)", "points", "R²"], rows);
}

export async function renderExperimentReport(results: ExperimentResults): Promise<string> {
  const charts = await Promise.all(
    experimentCharts(results).map(async (chart) => ({
      ...chart,
      svg: await renderSvg(chart.option, chart.size),
    })),
  );
  const failed = results.runs.filter((r) => r.status === "failed");
  const done = results.runs.length - failed.length;
  const regularisers = regularisersTable(results);
  const card = (title: string, body: string) =>
    `<section class="card"><h2>${escapeHtml(title)}</h2>${body}</section>`;
  const sections = [
    ...charts.map(
      (c) =>
        `<section class="card chart" id="chart-${escapeHtml(c.id)}">${c.svg}<p class="caption">${escapeHtml(c.caption)}</p></section>`,
    ),
    card("BLEU of greedy generations on training prompts against the training outputs", bleuTable(results)),
    ...(regularisers === ""
      ? []
      : [
          card(
            "KL-to-base and NEFTune against neither, paired by seed (same data split and λ): mean ± standard deviation of the differences",
            regularisers,
          ),
        ]),
    card("Every grid cell: mean ± standard deviation over seeds (final eval)", aggregatesTable(results)),
    card(
      "Held-out output loss minus IT's, fitted as a + b·ln(ratio) + c·ln(examples) per λ (what imtrain analyze recommends from)",
      results.fits.length > 0 ? fitsTable(results) : `<p class="note">No λ paired with an IT run yet.</p>`,
    ),
    ...(failed.length > 0
      ? [
          card(
            "Failed runs (a rerun retries them)",
            table(
              ["run", "error"],
              failed.map((r) => [r.id, r.error ?? ""]),
            ),
          ),
        ]
      : []),
  ];
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>imtrain experiment ${escapeHtml(results.name)}</title><style>${STYLE}</style></head>
<body><main>
<h1>Experiment ${escapeHtml(results.name)}</h1>
<p class="meta">${done} runs done, ${failed.length} failed · base model ${escapeHtml(results.baseModel)} · config ${escapeHtml(results.config)} · ${escapeHtml(results.generatedAt)}</p>
${sections.join("\n")}
<script type="application/json" id="${EXPERIMENT_DATA_ELEMENT_ID}">${embeddedJson(results)}</script>
</main></body></html>
`;
}

/** Writes the page atomically: a reader never sees half a report. */
export async function writeExperimentReport(results: ExperimentResults, outFile: string): Promise<void> {
  const html = await renderExperimentReport(results);
  mkdirSync(dirname(outFile), { recursive: true });
  await writeFileSynced(outFile, html);
}
