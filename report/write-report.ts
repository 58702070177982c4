// `imtrain report`: read run directories, draw their charts, write one HTML page. Also called at the end of
// train/launch/demo so every run leaves OUT/report.html behind.
import { mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { UserError } from "../shared/errors.js";
import {
  RUN_COLOURS,
  outputLossChart,
  overfittingGapChart,
  phaseChart,
  throughputChart,
  type ChartRun,
} from "./chart-options.js";
import { reportPage, type PageRun, type ReportPage } from "./html.js";
import { readRun } from "./run-dir.js";
import { runFacts, type RunFacts } from "./run-facts.js";
import { runLabels } from "./run-labels.js";
import { renderSvg } from "./render-svg.js";
import { phaseSecondsPerStep, runSeries } from "./series.js";

/** Version of the embedded JSON's layout; bump when a field changes meaning. */
export const REPORT_DATA_VERSION = 1;

/** The table's figures under metrics.jsonl-style names, null where the run has none. */
function factsData(facts: RunFacts) {
  const known = (value: number | string | undefined) => value ?? null;
  return {
    status: facts.status,
    prompt_loss_weight: known(facts.promptLossWeight),
    template_loss_weight: known(facts.templateLossWeight),
    instruction_output_ratio: known(facts.instructionOutputRatio),
    model: known(facts.model),
    model_parameters: known(facts.modelParameters),
    completed_steps: known(facts.completedSteps),
    planned_steps: known(facts.plannedSteps),
    final_train_output_loss: known(facts.finalTrainOutputLoss),
    final_eval_output_loss: known(facts.finalHeldOutLoss),
    final_overfitting_gap: known(facts.finalGap),
    tokens_per_s: known(facts.tokensPerS),
    elapsed_s: known(facts.elapsedS),
  };
}

/** The report page for `runDirs`, as HTML text. */
export async function renderRunReport(runDirs: readonly string[], generatedAt = new Date()): Promise<string> {
  if (runDirs.length === 0) throw new UserError("report: name at least one run directory");
  const runs = runDirs.map(readRun);
  const labels = runLabels(runs.map((run) => run.dir));
  const pageRuns: PageRun[] = runs.map((run, index) => ({
    label: labels[index] ?? run.dir,
    dir: run.dir,
    colour: RUN_COLOURS[index % RUN_COLOURS.length] ?? RUN_COLOURS[0],
    updatedAt: run.updatedAt,
    facts: runFacts(run),
    skippedLastLine: run.metrics.skippedLastLine,
  }));
  const chartRuns: ChartRun[] = runs.map((run, index) => ({
    label: pageRuns[index]?.label ?? run.dir,
    colour: pageRuns[index]?.colour ?? RUN_COLOURS[0],
    series: runSeries(run.metrics),
    phases: phaseSecondsPerStep(run.metrics),
  }));

  const sections: ReportPage["sections"][number][] = [];
  for (const chart of [
    outputLossChart(chartRuns),
    overfittingGapChart(chartRuns),
    throughputChart(chartRuns),
  ]) {
    sections.push({ id: chart.id, caption: chart.caption, svg: await renderSvg(chart.option, chart.size) });
  }
  const phases = phaseChart(chartRuns);
  sections.push(
    phases
      ? { id: phases.id, caption: phases.caption, svg: await renderSvg(phases.option, phases.size) }
      : {
          note: "Step-phase breakdown: no run logged phase_s (runs recorded before phase timing), so no chart.",
        },
  );

  const data = {
    version: REPORT_DATA_VERSION,
    generated_at: generatedAt.toISOString(),
    runs: pageRuns.map((run, index) => ({
      label: run.label,
      dir: run.dir,
      colour: run.colour,
      metrics_updated_at: run.updatedAt.toISOString(),
      series: chartRuns[index]?.series,
      phase_s_per_step: chartRuns[index]?.phases ?? null,
      table: factsData(run.facts),
    })),
  };
  return reportPage({ generatedAt, runs: pageRuns, sections, data });
}

/** Writes the report for `runDirs` to `outFile` (whole, or not at all) and returns its absolute path. */
export async function writeRunReport(runDirs: readonly string[], outFile: string): Promise<string> {
  const html = await renderRunReport(runDirs);
  const path = resolve(outFile);
  const partial = `${path}.${process.pid}.tmp`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(partial, html);
    renameSync(partial, path);
  } catch (error) {
    rmSync(partial, { force: true });
    throw new UserError(`${outFile}: cannot write the report (${(error as Error).message})`, {
      cause: error,
    });
  }
  return path;
}
