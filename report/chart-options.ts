// The report's charts as ECharts options, one function per chart. Runs overlay in each line chart, one
// colour per run; within a run, line style tells the series apart (solid: per step, dashed: held-out eval,
// dotted: train-subset eval). Points the run logged as NaN/Infinity (null) are left out.
import type { EChartsOption, LineSeriesOption } from "echarts";
import { RANK_PHASES, type RankPhase } from "../shared/metrics/records.js";
import type { Point, RunSeries } from "./series.js";
import type { ChartSize } from "./render-svg.js";

export interface ChartRun {
  readonly label: string;
  readonly colour: string;
  readonly series: RunSeries;
  readonly phases: Partial<Record<RankPhase, number>> | undefined;
}

export interface Chart {
  /** The page anchor: chart-<id>. */
  readonly id: string;
  /** What the chart shows, for the page to set under it (HTML wraps it; SVG text would not). */
  readonly caption: string;
  readonly option: EChartsOption;
  readonly size: ChartSize;
}

/** Arial's metrics (Liberation Sans is metric-compatible): ECharts lays out text in Node with Arial's
 * character widths, so a wider font would overlap legend entries in the browser. */
export const FONT = "Helvetica, Arial, Liberation Sans, sans-serif";
const WIDTH = 1060;
const PLOT_HEIGHT = 260;
const INK = "#1f2328";
const MUTED = "#57606a";

/** Distinct, colour-blind-friendly (Tableau 10); runs beyond ten reuse them. */
export const RUN_COLOURS = [
  "#4e79a7",
  "#f28e2b",
  "#e15759",
  "#76b7b2",
  "#59a14f",
  "#edc948",
  "#b07aa1",
  "#ff9da7",
  "#9c755f",
  "#bab0ac",
] as const;

const PHASE_NAMES: Record<RankPhase, string> = {
  data: "data",
  forward_backward: "forward/backward",
  allreduce: "all-reduce",
  wait: "wait for slowest rank",
  optimizer: "optimizer",
  eval: "eval",
  checkpoint: "checkpoint",
};

/** Phases get their own palette (ColorBrewer Set2) so they are not read as runs. */
const PHASE_COLOURS: Record<RankPhase, string> = {
  data: "#8da0cb",
  forward_backward: "#66c2a5",
  allreduce: "#fc8d62",
  wait: "#e78ac3",
  optimizer: "#a6d854",
  eval: "#ffd92f",
  checkpoint: "#b3b3b3",
};

const plotted = (points: readonly Point[]): [number, number][] =>
  points.flatMap(([step, value]) => (value !== null && Number.isFinite(value) ? [[step, value]] : []));

/** A plain stroke: the legend's icon for lines drawn without markers (ECharts would draw a circle). */
const PLAIN_LINE_ICON = "path://M0 0h28v2H0z";

interface LegendEntry {
  readonly name: string;
  readonly marked: boolean;
}

/** Title and legend above the plot, with room for as many legend rows as the names need; the chart's height. */
function frame(title: string, legend: readonly LegendEntry[]) {
  // Widths as ECharts estimates 12 px Arial text (about 6 px a character), plus icon and gap.
  const legendWidth = legend.reduce((sum, entry) => sum + entry.name.length * 7 + 50, 0);
  const legendRows = Math.max(1, Math.ceil(legendWidth / (WIDTH - 40)));
  const plotTop = 44 + legendRows * 24 + 30;
  return {
    textStyle: { fontFamily: FONT, color: INK },
    title: {
      text: title,
      left: 12,
      top: 10,
      textStyle: { fontSize: 17, fontWeight: "bold" as const, color: INK },
    },
    legend: {
      data: legend.map(({ name, marked }) => (marked ? { name } : { name, icon: PLAIN_LINE_ICON })),
      left: 12,
      top: 44,
      right: 12,
      itemWidth: 28,
      itemGap: 16,
      textStyle: { fontSize: 12, color: INK },
    },
    grid: { left: 84, right: 40, top: plotTop, bottom: 64 },
    height: plotTop + PLOT_HEIGHT + 64,
  };
}

function stepAxis() {
  return {
    type: "value" as const,
    name: "optimizer step",
    nameLocation: "middle" as const,
    nameGap: 32,
    minInterval: 1,
    nameTextStyle: { fontSize: 13, color: MUTED },
  };
}

function valueAxis(name: string, fromZero: boolean) {
  return {
    type: "value" as const,
    name,
    nameLocation: "middle" as const,
    nameGap: 60,
    scale: !fromZero,
    nameTextStyle: { fontSize: 13, color: MUTED },
  };
}

/** Beyond this many evals a line's markers would merge into a band. */
const MOST_MARKED_POINTS = 40;

/** step: every step, no markers; the rest: every eval, marked while few. */
type LineKind = "step" | "eval" | "held-out" | "train-subset";

function line(run: ChartRun, name: string, points: readonly Point[], kind: LineKind): LineSeriesOption {
  const evalLine = kind !== "step";
  const data = plotted(points);
  return {
    type: "line",
    name,
    data,
    color: run.colour,
    // Downsamples only where there are more points than pixels; the embedded JSON keeps every point.
    sampling: "lttb",
    // Per-step lines are dense: no markers, in the plot or the legend. Evals are marked while few.
    symbol: kind === "step" ? "none" : kind === "train-subset" ? "triangle" : "circle",
    showSymbol: kind !== "step" && data.length <= MOST_MARKED_POINTS,
    symbolSize: 7,
    lineStyle: {
      width: evalLine ? 2.5 : 1.5,
      type: kind === "held-out" ? "dashed" : kind === "train-subset" ? "dotted" : "solid",
    },
    emphasis: { disabled: true },
  };
}

function lineChart(
  id: string,
  title: string,
  caption: string,
  yName: string,
  fromZero: boolean,
  series: LineSeriesOption[],
): Chart {
  const { height, ...parts } = frame(
    title,
    series.map((item) => ({ name: String(item.name), marked: item.symbol !== "none" })),
  );
  return {
    id,
    caption,
    option: { ...parts, xAxis: stepAxis(), yAxis: valueAxis(yName, fromZero), series },
    size: { width: WIDTH, height },
  };
}

export function outputLossChart(runs: readonly ChartRun[]): Chart {
  const series = runs.flatMap((run) => [
    line(run, `${run.label} · train`, run.series.train_output_loss, "step"),
    line(run, `${run.label} · held-out`, run.series.eval_output_loss, "held-out"),
    line(run, `${run.label} · train subset`, run.series.train_eval_output_loss, "train-subset"),
  ]);
  return lineChart(
    "output-loss",
    "Output loss",
    "Mean cross-entropy on output tokens only, so IT and IM runs compare. Solid: the training batches, " +
      "each step. Dashed: held-out data, each eval. Dotted: a fixed subset of the training data, each eval " +
      "(scored the same way), so dashed above dotted is the overfitting gap.",
    "output loss (nats / token)",
    false,
    series,
  );
}

export function overfittingGapChart(runs: readonly ChartRun[]): Chart {
  return lineChart(
    "overfitting-gap",
    "Overfitting gap",
    "Held-out output loss minus train-subset output loss at each eval. A rising gap means the model " +
      "fits its training data beyond what generalises.",
    "gap (nats / token)",
    false,
    runs.map((run) => line(run, run.label, run.series.overfitting_gap, "eval")),
  );
}

export function throughputChart(runs: readonly ChartRun[]): Chart {
  return lineChart(
    "throughput",
    "Throughput",
    "Real (unpadded) tokens trained per second of wall time, each step, over all ranks.",
    "tokens / s",
    true,
    runs.map((run) => line(run, run.label, run.series.tokens_per_s, "step")),
  );
}

/** Undefined where no run logged step phases (runs before phase timing was recorded). */
export function phaseChart(runs: readonly ChartRun[]): Chart | undefined {
  const phased = runs.filter((run) => run.phases !== undefined);
  if (phased.length === 0) return undefined;
  const phases = RANK_PHASES.filter((phase) => phased.some((run) => run.phases?.[phase] !== undefined));
  const unphased = runs.filter((run) => run.phases === undefined).map((run) => run.label);
  const { height, ...parts } = frame(
    "Where a step's time goes",
    phases.map((phase) => ({ name: PHASE_NAMES[phase], marked: true })),
  );
  const caption =
    "Mean seconds per optimizer step in each phase (each a mean over ranks; wait is time blocked on the " +
    "slowest rank). Eval and checkpoint time is spread over all steps, so a bar's height is the mean wall " +
    "time per step." +
    (unphased.length > 0 ? ` Not shown, as they logged no phase_s: ${unphased.join(", ")}.` : "");
  return {
    id: "phases",
    caption,
    option: {
      ...parts,
      xAxis: {
        type: "category",
        data: phased.map((run) => run.label),
        name: "run",
        nameLocation: "middle",
        nameGap: 32,
        nameTextStyle: { fontSize: 13, color: MUTED },
        axisLabel: { fontSize: 13, color: INK },
      },
      yAxis: valueAxis("seconds per step", true),
      series: phases.map((phase) => ({
        type: "bar",
        name: PHASE_NAMES[phase],
        stack: "step",
        color: PHASE_COLOURS[phase],
        barMaxWidth: 140,
        data: phased.map((run) => run.phases?.[phase] ?? 0),
        emphasis: { disabled: true },
      })),
    },
    size: { width: WIDTH, height },
  };
}
