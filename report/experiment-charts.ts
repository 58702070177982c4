// An experiment's charts (the paper's analyses) as ECharts options, from results.json. A chart with nothing
// to show (one data set, no KL values) is left out rather than drawn empty.
import type { EChartsOption, SeriesOption } from "echarts";
import { aggregate, atBaseKnobs, spread } from "../experiment/analysis.js";
import type { Aggregate, ExperimentResults, RunResult } from "../experiment/results.js";
import { FONT, RUN_COLOURS, type Chart } from "./chart-options.js";

const WIDTH = 1060;
const HEIGHT = 380;
const INK = "#1f2328";

function option(title: string, x: object, y: object, series: SeriesOption[]): EChartsOption {
  return {
    textStyle: { fontFamily: FONT, color: INK },
    title: { text: title, left: 12, top: 10, textStyle: { fontSize: 17, color: INK } },
    legend: { top: 44, left: 12, right: 12, textStyle: { fontSize: 12 } },
    grid: { left: 84, right: 40, top: 110, bottom: 64 },
    xAxis: { nameLocation: "middle", nameGap: 32, ...x },
    yAxis: { nameLocation: "middle", nameGap: 56, scale: true, ...y },
    series,
  };
}

const colour = (i: number) => RUN_COLOURS[i % RUN_COLOURS.length] ?? RUN_COLOURS[0];
const sorted = (values: Iterable<number>) => [...new Set(values)].sort((a, b) => a - b);
const done = (results: ExperimentResults) => results.runs.filter((r) => r.status === "done");

/** The base knobs (smallest template weight, KL and NEFTune of the grid) at each data set's largest size. */
function atBase(runs: readonly RunResult[]): RunResult[] {
  const largest = new Map<string, number>();
  for (const r of runs)
    largest.set(r.params.dataset, Math.max(largest.get(r.params.dataset) ?? 0, r.params.trainExamples));
  return atBaseKnobs(runs).filter((r) => r.params.trainExamples === largest.get(r.params.dataset));
}

/** (1) Train and held-out output loss per step, mean over seeds, one colour per (data set, λ). */
function curvesChart(runs: readonly RunResult[]): Chart | undefined {
  const base = atBase(runs);
  if (base.length === 0) return undefined;
  const groups = new Map<string, RunResult[]>();
  for (const r of base) {
    const key = `${r.params.dataset} λ=${r.params.promptLossWeight}`;
    groups.set(key, [...(groups.get(key) ?? []), r]);
  }
  const series: SeriesOption[] = [...groups].flatMap(([name, group], i) => {
    const steps = sorted(group.flatMap((r) => r.curve.map((p) => p.step)));
    const mean = (pick: (p: RunResult["curve"][number]) => number) =>
      steps.map((step) => [
        step,
        spread(
          group
            .map((r) => r.curve.find((p) => p.step === step))
            .filter((p) => p !== undefined)
            .map(pick),
        ).mean,
      ]);
    const style = { color: colour(i) };
    return [
      {
        type: "line",
        name: `${name} held-out`,
        data: mean((p) => p.heldOutOutputLoss),
        showSymbol: false,
        itemStyle: style,
        lineStyle: style,
      },
      {
        type: "line",
        name: `${name} train`,
        data: mean((p) => p.trainOutputLoss),
        showSymbol: false,
        itemStyle: style,
        lineStyle: { ...style, type: "dashed" },
      },
    ];
  });
  return {
    id: "curves",
    caption:
      "Output-token loss on the held-out set (solid) and on a fixed subset of the training examples (dashed), mean over seeds. IM overfitting less shows as a higher train curve and a lower held-out curve than IT.",
    option: option(
      "Train vs held-out output loss",
      { type: "value", name: "optimizer step" },
      { type: "value", name: "output loss" },
      series,
    ),
    size: { width: WIDTH, height: HEIGHT + 60 },
  };
}

/** (2) and (3): IM − IT held-out loss against the ratio, or the training-set size, ± one std over seeds. */
function differenceChart(results: ExperimentResults, against: "ratio" | "size"): Chart | undefined {
  const points = results.imMinusIt;
  const xs = new Set(points.map((d) => (against === "ratio" ? d.dataset : d.trainExamples)));
  if (xs.size < 2) return undefined;
  const groups = new Map<string, typeof points>();
  for (const d of points) {
    const key = against === "ratio" ? `${d.trainExamples} examples` : d.dataset;
    groups.set(key, [...(groups.get(key) ?? []), d]);
  }
  const x = (d: (typeof points)[number]) =>
    against === "ratio" ? d.instructionOutputRatio : d.trainExamples;
  const series: SeriesOption[] = [...groups].flatMap(([name, group], i) => {
    const line = [...group].sort((a, b) => x(a) - x(b));
    return [
      {
        type: "line",
        name,
        data: line.map((d) => [x(d), d.difference.mean]),
        itemStyle: { color: colour(i) },
        lineStyle: { color: colour(i) },
      },
      {
        type: "custom",
        name,
        data: line.map((d) => [
          x(d),
          d.difference.mean - d.difference.std,
          d.difference.mean + d.difference.std,
        ]),
        renderItem: (
          _params: unknown,
          api: { value(i: number): number; coord(p: number[]): number[]; style(): object },
        ) => {
          const [lowX, low] = api.coord([api.value(0), api.value(1)]) as [number, number];
          const [, high] = api.coord([api.value(0), api.value(2)]) as [number, number];
          return {
            type: "line",
            shape: { x1: lowX, y1: low, x2: lowX, y2: high },
            style: { stroke: colour(i), lineWidth: 1.5 },
          };
        },
      } as SeriesOption,
    ];
  });
  series.push({
    type: "line",
    name: "no difference",
    data: [],
    markLine: {
      silent: true,
      symbol: "none",
      data: [{ yAxis: 0 }],
      lineStyle: { color: "#57606a", type: "dotted" },
    },
  });
  const title =
    against === "ratio"
      ? "IM − IT held-out output loss against the instruction/output ratio"
      : "IM − IT held-out output loss against the training-set size";
  return {
    id: against === "ratio" ? "im-it-ratio" : "im-it-size",
    caption:
      against === "ratio"
        ? "Below zero IM generalised better than IT. The paper finds IM helps more as instructions get long next to outputs (x: mean prompt ÷ mean output tokens as trained, log scale); bars are ± one standard deviation over seeds."
        : "Below zero IM generalised better than IT. The paper finds IM helps most with little data (x: training examples, log scale); bars are ± one standard deviation over seeds.",
    option: option(
      title,
      { type: "log", name: against === "ratio" ? "instruction / output ratio" : "training examples" },
      { type: "value", name: "IM − IT held-out loss" },
      series,
    ),
    size: { width: WIDTH, height: HEIGHT },
  };
}

/** (5) Held-out output loss against λ per data set, mean ± std over seeds. */
function lambdaChart(results: ExperimentResults): Chart | undefined {
  const cells = aggregate(atBase(done(results)));
  if (new Set(cells.map((c) => c.params.promptLossWeight)).size < 3) return undefined;
  const byDataset = new Map<string, Aggregate[]>();
  for (const c of cells) byDataset.set(c.params.dataset, [...(byDataset.get(c.params.dataset) ?? []), c]);
  const series: SeriesOption[] = [...byDataset].map(([name, group], i) => ({
    type: "line",
    name,
    data: [...group]
      .sort((a, b) => a.params.promptLossWeight - b.params.promptLossWeight)
      .map((c) => [c.params.promptLossWeight, c.heldOutOutputLoss.mean]),
    itemStyle: { color: colour(i) },
    lineStyle: { color: colour(i) },
  }));
  return {
    id: "lambda",
    caption:
      "Held-out output loss against the prompt-loss weight λ (0 = IT, 1 = IM), mean over seeds: the curve between the paper's two ends.",
    option: option(
      "Held-out output loss against λ",
      { type: "value", name: "prompt-loss weight λ", min: 0, max: 1 },
      { type: "value", name: "held-out output loss" },
      series,
    ),
    size: { width: WIDTH, height: HEIGHT },
  };
}

/** (6) KL and NEFTune: held-out loss for IT and IM with each setting, grouped bars. */
function regularisersChart(results: ExperimentResults): Chart | undefined {
  const cells = aggregate(done(results));
  const settings = [
    ...new Set(cells.map((c) => `KL ${c.params.klWeight}, NEFTune ${c.params.neftuneAlpha}`)),
  ];
  if (settings.length < 2) return undefined;
  const lambdas = sorted(cells.map((c) => c.params.promptLossWeight)).filter((l) => l === 0 || l === 1);
  const series: SeriesOption[] = lambdas.map((lambda, i) => ({
    type: "bar",
    name: lambda === 0 ? "IT (λ = 0)" : "IM (λ = 1)",
    data: settings.map((setting) => {
      const group = cells.filter(
        (c) =>
          c.params.promptLossWeight === lambda &&
          `KL ${c.params.klWeight}, NEFTune ${c.params.neftuneAlpha}` === setting,
      );
      return spread(group.map((c) => c.heldOutOutputLoss.mean)).mean;
    }),
    itemStyle: { color: colour(i) },
  }));
  return {
    id: "regularisers",
    caption:
      "Held-out output loss of IT and IM with KL-to-base and NEFTune, mean over seeds and data sets (the paper: KL reduces overfitting; NEFTune adds to IM).",
    option: option(
      "KL and NEFTune",
      { type: "category", data: settings, name: "setting" },
      { type: "value", name: "held-out output loss" },
      series,
    ),
    size: { width: WIDTH, height: HEIGHT },
  };
}

export function experimentCharts(results: ExperimentResults): Chart[] {
  const runs = done(results);
  return [
    curvesChart(runs),
    differenceChart(results, "ratio"),
    differenceChart(results, "size"),
    lambdaChart(results),
    regularisersChart(results),
  ].filter((chart): chart is Chart => chart !== undefined);
}
