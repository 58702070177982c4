// `imtrain report` on real runs: two short trains (IT and IM) reported into one page whose charts are the
// files' series (one line per run per series, a point per record, y an affine decreasing function of the
// value), whose table and embedded JSON say what the files say, and which a real browser renders. Bad run
// directories fail with one line naming the place. Chromium is needed for one test: off CI a missing one
// skips it, in CI it fails.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { inflateSync } from "node:zlib";
import { after, before, test, type TestContext } from "node:test";
import { DATA_ELEMENT_ID, renderRunReport, writeRunReport } from "../../report/index.js";
import { CLI } from "../support/cli.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const TRAIN_DEADLINE_MS = 90_000;
const REPORT_DEADLINE_MS = 30_000;
const BROWSER_DEADLINE_MS = 45_000;
/** For a test that runs the CLI: past its own deadline, so the deadline's message is what fails. */
const CLI_TIMEOUT = { timeout: REPORT_DEADLINE_MS + 5_000 };

// ---- processes with a deadline: a hang is killed and fails by name ----

interface Finished {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(command: string, args: readonly string[], deadlineMs: number, cwd?: string): Promise<Finished> {
  const name = `${command} ${args.slice(0, 2).join(" ")}`;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const deadline = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${name} did not finish within ${deadlineMs / 1000} s; stderr:\n${stderr}`));
    }, deadlineMs);
    child.once("error", (error) => {
      clearTimeout(deadline);
      reject(error);
    });
    child.once("close", (status) => {
      clearTimeout(deadline);
      resolve({ status, stdout, stderr });
    });
  });
}

const imtrain = (args: readonly string[], deadlineMs = REPORT_DEADLINE_MS) =>
  run(process.execPath, [CLI, ...args], deadlineMs);

/** Exit 2 and one stderr line `imtrain: …` mentioning each of `mentions`, with no stack trace. */
function assertUserError(result: Finished, ...mentions: string[]): void {
  const shown = `exit ${String(result.status)}, stderr:\n${result.stderr}`;
  assert.equal(result.status, 2, shown);
  assert.ok(!result.stderr.includes("    at "), `no stack trace expected; ${shown}`);
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 1, shown);
  assert.match(lines[0] ?? "", /^imtrain: /, shown);
  for (const mention of mentions) assert.ok(lines[0]?.includes(mention), `expected "${mention}"; ${shown}`);
}

// ---- what metrics.jsonl holds, read here independently of report/ ----

type Value = number | null;
type MetricsLine = { type: string; step: number; phase_s?: Record<string, Value> } & Record<string, unknown>;

const SERIES_SOURCE = {
  train_output_loss: "step",
  eval_output_loss: "eval",
  train_eval_output_loss: "eval",
  overfitting_gap: "eval",
  tokens_per_s: "step",
} as const;
type SeriesName = keyof typeof SERIES_SOURCE;
const SERIES_NAMES = Object.keys(SERIES_SOURCE) as SeriesName[];

function metricsLines(runDir: string): MetricsLine[] {
  return readFileSync(join(runDir, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as MetricsLine);
}

/** [step, value] for every record of the series' type that has the field, as the file holds it. */
function fileSeries(runDir: string, name: SeriesName): [number, Value][] {
  return metricsLines(runDir)
    .filter((line) => line.type === SERIES_SOURCE[name] && line[name] !== undefined)
    .map((line) => [line.step, line[name] as Value]);
}

const plottable = (points: readonly [number, Value][]) =>
  points.filter((point): point is [number, number] => point[1] !== null && Number.isFinite(point[1]));

// ---- reading the page: a small DOM-free parse of the markup report/html.ts writes ----

interface ReportData {
  runs: {
    label: string;
    dir: string;
    colour: string;
    series: Record<SeriesName, [number, Value][]>;
    phase_s_per_step: Record<string, number> | null;
    table: Record<string, unknown>;
  }[];
}

function embeddedData(html: string): ReportData {
  const match = new RegExp(`<script type="application/json" id="${DATA_ELEMENT_ID}">([^<]*)</script>`).exec(
    html,
  );
  assert.ok(match?.[1], "the page embeds its data as JSON");
  return JSON.parse(match[1]) as ReportData;
}

function chartSvg(html: string, id: string): string {
  const section = new RegExp(`<section[^>]*id="chart-${id}"[^>]*>([\\s\\S]*?)</section>`).exec(html);
  assert.ok(section?.[1], `the page has the chart ${id}`);
  const svgs = section[1].match(/<svg[\s\S]*?<\/svg>/g) ?? [];
  assert.equal(svgs.length, 1, `chart ${id} is one inline SVG`);
  return svgs[0] ?? "";
}

type Attributes = Record<string, string>;

function svgPaths(svg: string): Attributes[] {
  return [...svg.matchAll(/<path\b([^>]*)>/g)].map((match) =>
    Object.fromEntries([...(match[1] ?? "").matchAll(/([\w:-]+)="([^"]*)"/g)].map((a) => [a[1], a[2]])),
  );
}

/** The polylines of line series: a run's colour, no fill, no transform (legend icons have one), only M/L. */
function runLines(svg: string, colour: string): Attributes[] {
  return svgPaths(svg).filter(
    (path) =>
      path.stroke === colour &&
      path.fill === "none" &&
      path.transform === undefined &&
      /^M[\d.\s-]+(L[\d.\s-]+)*$/.test(path.d ?? ""),
  );
}

function pathPoints(d: string): [number, number][] {
  return [...d.matchAll(/[ML](-?[\d.]+)[ ,](-?[\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2])]);
}

/** Chart 1 tells a run's series apart by line style: solid per step, dashed held-out, dotted train subset. */
function lossSeriesOf(path: Attributes): SeriesName {
  const dash = path["stroke-dasharray"];
  if (dash === undefined) return "train_output_loss";
  const first = Number(dash.split(/[ ,]/)[0]);
  return first >= 2 * Number(path["stroke-width"]) ? "eval_output_loss" : "train_eval_output_loss";
}

/** Least-squares y ≈ a + b·x; the largest residual says whether the relation is affine. */
function affineFit(pairs: readonly [number, number][]) {
  const n = pairs.length;
  const meanX = pairs.reduce((s, [x]) => s + x, 0) / n;
  const meanY = pairs.reduce((s, [, y]) => s + y, 0) / n;
  const sxy = pairs.reduce((s, [x, y]) => s + (x - meanX) * (y - meanY), 0);
  const sxx = pairs.reduce((s, [x]) => s + (x - meanX) ** 2, 0);
  const slope = sxy / sxx;
  const intercept = meanY - slope * meanX;
  const maxResidual = Math.max(...pairs.map(([x, y]) => Math.abs(y - (intercept + slope * x))));
  return { slope, intercept, maxResidual };
}

/** ECharts writes coordinates to 0.1 px: a faithful plot fits within that rounding. */
const PIXEL_TOLERANCE = 0.15;

/**
 * Checks that `lines` (series name → the path drawn for it, per run) plot exactly the file's series: a point
 * per finite record, x affine increasing in the step and y affine decreasing in the value, with one fit for
 * the whole chart (the runs share the axes).
 */
function assertPlotsFileSeries(
  chart: string,
  lines: { runDir: string; name: SeriesName; d: string }[],
): void {
  const xPairs: [number, number][] = [];
  const yPairs: [number, number][] = [];
  for (const { runDir, name, d } of lines) {
    const expected = plottable(fileSeries(runDir, name));
    const drawn = pathPoints(d);
    assert.equal(drawn.length, expected.length, `${chart}: ${runDir} ${name} has a point per record`);
    drawn.forEach(([x, y], index) => {
      const [step, value] = expected[index] ?? [NaN, NaN];
      xPairs.push([step, x]);
      yPairs.push([value, y]);
    });
  }
  const x = affineFit(xPairs);
  const y = affineFit(yPairs);
  assert.ok(x.slope > 0, `${chart}: x grows with the step`);
  assert.ok(y.slope < 0, `${chart}: y (SVG, downwards) falls as the value grows`);
  assert.ok(x.maxResidual < PIXEL_TOLERANCE, `${chart}: x is affine in the step (residual ${x.maxResidual})`);
  assert.ok(
    y.maxResidual < PIXEL_TOLERANCE,
    `${chart}: y is affine in the value (residual ${y.maxResidual})`,
  );
}

const decodeEntities = (text: string) =>
  text
    .replace(/&#(\d+);/g, (_, code: string) => String.fromCharCode(Number(code)))
    .replace(/&amp;/g, "&")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">");

const cellText = (html: string) => decodeEntities(html.replace(/<[^>]*>/g, "")).trim();

/** The summary table's rows as column title → cell text. */
function tableRows(html: string): Record<string, string>[] {
  const table = /<table>([\s\S]*?)<\/table>/.exec(html)?.[1] ?? "";
  const titles = [...table.matchAll(/<th[^>]*>([\s\S]*?)<\/th>/g)].map((m) => cellText(m[1] ?? ""));
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(table)?.[1] ?? "";
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((row) => {
    const cells = [...(row[1] ?? "").matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((m) => cellText(m[1] ?? ""));
    return Object.fromEntries(titles.map((title, index) => [title, cells[index] ?? ""]));
  });
}

const PHASE_ORDER = ["data", "forward_backward", "allreduce", "wait", "optimizer", "eval", "checkpoint"];

/** Mean seconds per step by phase: step phases averaged over steps, eval and checkpoint totals over all steps. */
function filePhaseMeans(lines: readonly MetricsLine[]): Record<string, number> {
  const steps = lines.filter((line) => line.type === "step");
  const total = (type: string, field: string) =>
    lines.filter((line) => line.type === type).reduce((sum, line) => sum + Number(line[field]), 0);
  const means: Record<string, number> = {};
  for (const phase of PHASE_ORDER.slice(0, 5)) {
    means[phase] = steps.reduce((sum, line) => sum + Number(line.phase_s?.[phase]), 0) / steps.length;
  }
  if (lines.some((line) => line.type === "eval")) means.eval = total("eval", "eval_s") / steps.length;
  if (lines.some((line) => line.type === "checkpoint"))
    means.checkpoint = total("checkpoint", "checkpoint_s") / steps.length;
  return means;
}

function assertPhaseMeans(actual: Record<string, number>, expected: Record<string, number>): void {
  assert.deepEqual(Object.keys(actual), Object.keys(expected));
  for (const [phase, seconds] of Object.entries(expected)) {
    assert.ok(Math.abs((actual[phase] ?? NaN) - seconds) < 1e-12, `${phase}: ${actual[phase]} ≈ ${seconds}`);
  }
}

/** Bar layout snaps segment edges to 0.1 px, so a segment's height is off by up to two roundings. */
const BAR_TOLERANCE = 0.25;

/**
 * The phase chart: a segment per phase per run (ECharts tags each with its series = phase and data = run
 * index), each as tall as the embedded mean, on one scale through zero.
 */
function assertBarsArePhaseMeans(page: string, runCount: number): void {
  const data = embeddedData(page);
  const phases = PHASE_ORDER.filter((phase) =>
    data.runs.some((run) => run.phase_s_per_step?.[phase] !== undefined),
  );
  const bars = svgPaths(chartSvg(page, "phases")).filter((path) => path.ecmeta_ssr_type === "chart");
  assert.equal(bars.length, phases.length * runCount, "a segment per phase per run");
  const pairs: [number, number][] = bars.map((bar) => {
    const run = data.runs[Number(bar.ecmeta_data_index)];
    const phase = phases[Number(bar.ecmeta_series_index)] ?? "";
    const height = Number(/l0 (-?[\d.]+)l/.exec(bar.d ?? "")?.[1]);
    return [run?.phase_s_per_step?.[phase] ?? 0, height];
  });
  const fit = affineFit(pairs);
  assert.ok(fit.slope < 0 && Math.abs(fit.intercept) < BAR_TOLERANCE, "heights are proportional to seconds");
  assert.ok(fit.maxResidual < BAR_TOLERANCE, `heights are the phase means (residual ${fit.maxResidual})`);
}

// ---- fixtures: two real runs and their report, made once ----

const root = tempDir("report");
const itDir = join(root, "it");
const imDir = join(root, "im");
const reportFile = join(root, "compare.html");
let html = "";

before(
  async () => {
    const data = writeSyntheticData(root, 60);
    const model = writeMicroModelConfig(root);
    const train = (mode: string, out: string) =>
      imtrain(
        [
          "train",
          ...["--data", data, "--model", model, "--loss-mode", mode, "--out", out],
          ...["--steps", "12", "--batch-size", "4", "--eval-every", "4", "--eval-fraction", "0.2"],
        ],
        TRAIN_DEADLINE_MS,
      );
    for (const result of await Promise.all([train("it", itDir), train("im", imDir)])) {
      assert.equal(result.status, 0, result.stderr);
    }
    const report = await imtrain(["report", itDir, imDir, "--out", reportFile]);
    assert.equal(report.status, 0, report.stderr);
    assert.equal(report.stdout, reportFile + "\n", "prints the path written, one line");
    html = readFileSync(reportFile, "utf8");
  },
  { timeout: 2 * TRAIN_DEADLINE_MS },
);

after(() => rmSync(root, { recursive: true, force: true }));

const RUNS = [
  { label: "it", dir: itDir },
  { label: "im", dir: imDir },
];

// ---- the real runs' report ----

test("report - the page is self-contained: no external scripts, styles, fonts or images", () => {
  assert.doesNotMatch(html, /<script\b(?![^>]*type="application\/json")/, "no executable script");
  assert.doesNotMatch(html, /<link\b|@import|url\((?!#)|\bsrc=|https?:\/\/(?!www\.w3\.org\/)/);
});

test("report - output loss: one line per run per series, each plotting that series of metrics.jsonl", () => {
  const svg = chartSvg(html, "output-loss");
  const data = embeddedData(html);
  const lines = RUNS.flatMap(({ label, dir }) => {
    const colour = data.runs.find((r) => r.label === label)?.colour ?? "";
    const paths = runLines(svg, colour);
    const names = paths.map(lossSeriesOf).sort();
    assert.deepEqual(names, ["eval_output_loss", "train_eval_output_loss", "train_output_loss"], label);
    return paths.map((path) => ({ runDir: dir, name: lossSeriesOf(path), d: path.d ?? "" }));
  });
  assertPlotsFileSeries("output-loss", lines);
});

for (const [chart, name] of [
  ["overfitting-gap", "overfitting_gap"],
  ["throughput", "tokens_per_s"],
] as const) {
  test(`report - ${chart}: one line per run, plotting ${name} of metrics.jsonl`, () => {
    const svg = chartSvg(html, chart);
    const data = embeddedData(html);
    const lines = RUNS.map(({ label, dir }) => {
      const paths = runLines(svg, data.runs.find((r) => r.label === label)?.colour ?? "");
      assert.equal(paths.length, 1, `${chart}: one line for ${label}`);
      return { runDir: dir, name, d: paths[0]?.d ?? "" };
    });
    assertPlotsFileSeries(chart, lines);
  });
}

test("report - legends name each run by its directory, one colour per run", () => {
  const data = embeddedData(html);
  assert.deepEqual(
    data.runs.map((r) => r.label),
    ["it", "im"],
  );
  assert.notEqual(data.runs[0]?.colour, data.runs[1]?.colour);
  for (const chart of ["output-loss", "overfitting-gap", "throughput"]) {
    const texts = [...chartSvg(html, chart).matchAll(/<text[^>]*>([^<]*)<\/text>/g)].map((m) => m[1]);
    for (const label of ["it", "im"]) {
      assert.ok(
        texts.some((text) => text === label || text?.startsWith(`${label} · `)),
        `${chart} legend names ${label}`,
      );
    }
  }
});

test("report - the table shows λ 0 for IT and 1 for IM, steps 12/12 and the final losses", () => {
  const rows = tableRows(html);
  assert.deepEqual(
    rows.map((row) => [row.run, row["loss mode"], row.steps]),
    [
      ["it", "IT · λ 0", "12 / 12"],
      ["im", "IM · λ 1", "12 / 12"],
    ],
  );
  for (const [index, { dir }] of RUNS.entries()) {
    const summary = JSON.parse(readFileSync(join(dir, "summary.json"), "utf8")) as {
      final_train_output_loss: number;
      final_eval: { eval_output_loss: number };
    };
    assert.equal(rows[index]?.["final train loss"], summary.final_train_output_loss.toFixed(4));
    assert.equal(rows[index]?.["final held-out loss"], summary.final_eval.eval_output_loss.toFixed(4));
  }
  const data = embeddedData(html);
  assert.deepEqual(
    data.runs.map((r) => r.table.prompt_loss_weight),
    [0, 1],
  );
});

test("report - the embedded JSON holds each run's series exactly as metrics.jsonl does", () => {
  const data = embeddedData(html);
  for (const [index, { dir }] of RUNS.entries()) {
    const run = data.runs[index];
    assert.equal(run?.dir, dir);
    for (const name of SERIES_NAMES) assert.deepEqual(run?.series[name], fileSeries(dir, name), name);
  }
});

test("report - the phase chart stacks each run's mean phase seconds (a note instead for runs without)", () => {
  const phased = RUNS.some(({ dir }) => metricsLines(dir).some((line) => line.phase_s !== undefined));
  if (!phased) {
    assert.doesNotMatch(html, /id="chart-phases"/);
    assert.match(html, /no run logged phase_s/);
    return;
  }
  const data = embeddedData(html);
  for (const [index, { dir }] of RUNS.entries()) {
    assertPhaseMeans(data.runs[index]?.phase_s_per_step ?? {}, filePhaseMeans(metricsLines(dir)));
  }
  assertBarsArePhaseMeans(html, RUNS.length);
});

// ---- a real browser ----

function findChromium(): string | undefined {
  const names = ["chromium", "chromium-browser", "google-chrome-stable", "google-chrome"];
  const dirs = (process.env.PATH ?? "").split(delimiter).concat("/usr/bin");
  for (const name of names) {
    for (const dir of dirs) if (existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

/** The RGBA pixels of an 8-bit RGB/RGBA, non-interlaced PNG (what Chromium writes). */
function decodePng(png: Buffer): { width: number; height: number; pixels: Buffer } {
  assert.equal(png.subarray(0, 8).toString("hex"), "89504e470d0a1a0a", "a PNG signature");
  let offset = 8;
  let width = 0;
  let height = 0;
  let channels = 0;
  const idat: Buffer[] = [];
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.toString("latin1", offset + 4, offset + 8);
    const body = png.subarray(offset + 8, offset + 8 + length);
    if (type === "IHDR") {
      width = body.readUInt32BE(0);
      height = body.readUInt32BE(4);
      assert.equal(body[8], 8, "8-bit samples");
      assert.equal(body[12], 0, "not interlaced");
      channels = body[9] === 6 ? 4 : body[9] === 2 ? 3 : 0;
      assert.ok(channels > 0, `colour type ${body[9]} is RGB or RGBA`);
    } else if (type === "IDAT") idat.push(body);
    offset += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const rows = Buffer.alloc(stride * height);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)];
    for (let x = 0; x < stride; x++) {
      const byte = raw[y * (stride + 1) + 1 + x] ?? 0;
      const left = x >= channels ? (rows[y * stride + x - channels] ?? 0) : 0;
      const up = y > 0 ? (rows[(y - 1) * stride + x] ?? 0) : 0;
      const upLeft = x >= channels && y > 0 ? (rows[(y - 1) * stride + x - channels] ?? 0) : 0;
      const p = left + up - upLeft;
      const [pa, pb, pc] = [Math.abs(p - left), Math.abs(p - up), Math.abs(p - upLeft)];
      const paeth = pa <= pb && pa <= pc ? left : pb <= pc ? up : upLeft;
      const predictor = [0, left, up, (left + up) >> 1, paeth][filter ?? 0] ?? 0;
      rows[y * stride + x] = (byte + predictor) & 0xff;
    }
  }
  const pixels = Buffer.alloc(width * height * 4, 255);
  for (let i = 0; i < width * height; i++) rows.copy(pixels, i * 4, i * channels, i * channels + 3);
  return { width, height, pixels };
}

test(
  "report - headless Chromium renders every chart's SVG, and the screenshot shows each run's colour",
  { timeout: 2 * BROWSER_DEADLINE_MS },
  async (t: TestContext) => {
    const chromium = findChromium();
    if (chromium === undefined) {
      if (process.env.CI === "true")
        throw new Error("chromium is not installed: CI must apt-get install chromium");
      t.skip("chromium not installed (apt-get install chromium)");
      return;
    }
    const browserDir = join(root, "browser");
    mkdirSync(browserDir, { recursive: true });
    const screenshot = join(browserDir, "report.png");
    const browse = (profile: string, ...args: string[]) =>
      run(
        chromium,
        [
          ...["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
          `--user-data-dir=${join(browserDir, profile)}`,
          ...args,
          `file://${reportFile}`,
        ],
        BROWSER_DEADLINE_MS,
        browserDir,
      );
    const [dom, shot] = await Promise.all([
      browse("dom", "--dump-dom"),
      browse("shot", `--screenshot=${screenshot}`, "--window-size=1200,2400", "--hide-scrollbars"),
    ]);
    assert.equal(dom.status, 0, dom.stderr);
    assert.equal(shot.status, 0, shot.stderr);
    for (const chart of ["output-loss", "overfitting-gap", "throughput"]) {
      const rendered = svgPaths(chartSvg(dom.stdout, chart)).length;
      assert.equal(rendered, svgPaths(chartSvg(html, chart)).length, `${chart}: every path in the DOM`);
      assert.ok(rendered > 10, `${chart} has its paths`);
    }

    const { width, height, pixels } = decodePng(readFileSync(screenshot));
    assert.deepEqual([width, height], [1200, 2400]);
    const colours = new Set<number>();
    for (let i = 0; i < pixels.length; i += 4) {
      colours.add(((pixels[i] ?? 0) << 16) | ((pixels[i + 1] ?? 0) << 8) | (pixels[i + 2] ?? 0));
    }
    assert.ok(colours.size > 50, `the screenshot is not blank (${colours.size} colours)`);
    for (const run of embeddedData(html).runs) {
      assert.ok(
        colours.has(Number.parseInt(run.colour.slice(1), 16)),
        `${run.label}'s ${run.colour} is drawn`,
      );
    }
  },
);

// ---- step phases, NaN, labels: written run directories ----

/** A run directory holding `lines` as metrics.jsonl (and `tail` after them, unterminated). */
function writeRun(name: string, lines: readonly object[], tail = ""): string {
  const dir = join(root, "written", name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "metrics.jsonl"), lines.map((line) => JSON.stringify(line) + "\n").join("") + tail);
  return dir;
}

interface WrittenLine {
  readonly type: string;
  readonly step: number;
  readonly [field: string]: unknown;
}

function phasedLines(ranks: number): WrittenLine[] {
  return Array.from({ length: 6 }, (_, index) => index + 1).flatMap((step) => [
    {
      type: "step",
      step,
      train_output_loss: 3 - step / 10,
      tokens: 1000,
      tokens_per_s: 5000,
      phase_s: {
        data: 0.01,
        forward_backward: 0.2 + step / 100,
        allreduce: 0.02 * ranks,
        wait: 0.01 * ranks,
        optimizer: 0.03,
      },
    },
    ...(step % 3 === 0
      ? [
          {
            type: "eval",
            step,
            eval_output_loss: 3,
            train_eval_output_loss: 2.9,
            overfitting_gap: 0.1,
            eval_s: 0.6,
          },
        ]
      : []),
    ...(step === 6 ? [{ type: "checkpoint", step, checkpoint_s: 0.3, rank: 0 }] : []),
  ]);
}

test("report - phase breakdown: one stacked bar per run, heights the mean seconds per step", async () => {
  const dirs = [writeRun("one-rank", phasedLines(1)), writeRun("four-ranks", phasedLines(4))];
  const page = await renderRunReport(dirs);
  const data = embeddedData(page);
  // Step phases are means over steps; eval (2 × 0.6 s) and checkpoint (0.3 s) are spread over the 6 steps.
  const expected = {
    data: 0.01,
    forward_backward: 0.235,
    allreduce: 0.08,
    wait: 0.04,
    optimizer: 0.03,
    eval: 0.2,
    checkpoint: 0.05,
  };
  assertPhaseMeans(data.runs[1]?.phase_s_per_step ?? {}, expected);
  assertPhaseMeans(data.runs[1]?.phase_s_per_step ?? {}, filePhaseMeans(metricsLines(dirs[1] ?? "")));
  assertBarsArePhaseMeans(page, dirs.length);
});

test("report - NaN/Infinity (null in JSON) stays in the embedded data but is left out of the chart", async () => {
  const lines = phasedLines(1).map((line) =>
    line.type === "eval" && line.step === 3 ? { ...line, eval_output_loss: null } : line,
  );
  const dir = writeRun("nan", lines);
  const page = await renderRunReport([dir]);
  const data = embeddedData(page);
  assert.deepEqual(data.runs[0]?.series.eval_output_loss, [
    [3, null],
    [6, 3],
  ]);
  const heldOut = runLines(chartSvg(page, "output-loss"), data.runs[0]?.colour ?? "").filter(
    (path) => lossSeriesOf(path) === "eval_output_loss",
  );
  assert.equal(heldOut.length, 1);
  assert.equal(pathPoints(heldOut[0]?.d ?? "").length, 1, "only the finite point is drawn");
});

test("report - runs whose directories share a basename get distinct names", async () => {
  const a = writeRun(join("a", "run"), phasedLines(1));
  const b = writeRun(join("b", "run"), phasedLines(1));
  const data = embeddedData(await renderRunReport([a, b, a]));
  assert.deepEqual(
    data.runs.map((r) => r.label),
    ["a/run", "b/run", "a/run (2)"],
  );
});

// ---- running jobs and bad input ----

test("report - a run without summary.json: 'running or stopped early', figures from metrics.jsonl", async () => {
  const dir = writeRun("running", metricsLines(itDir).slice(0, 9));
  const last = metricsLines(dir)
    .filter((line) => line.type === "step")
    .at(-1);
  const page = await renderRunReport([dir]);
  const [row] = tableRows(page);
  assert.equal(row?.steps, `${last?.step} / —`);
  assert.equal(row?.["final train loss"], (last?.train_output_loss as number).toFixed(4));
  assert.equal(row?.["loss mode"], "—");
  assert.equal(row?.elapsed, "—");
  assert.match(page, /running or stopped early/);
});

test("report - a half-written last line (a job mid-write) is left out, the rest reported", async () => {
  const whole = metricsLines(imDir);
  const dir = writeRun("mid-write", whole, '{"type":"step","step":13,"train_out');
  const page = await renderRunReport([dir]);
  assert.deepEqual(
    embeddedData(page).runs[0]?.series.train_output_loss,
    fileSeries(imDir, "train_output_loss"),
  );
  assert.match(page, /last line of metrics\.jsonl incomplete, left out/);
});

test("report - a broken line before the last: one line naming FILE:LINE", CLI_TIMEOUT, async () => {
  const lines = readFileSync(join(itDir, "metrics.jsonl"), "utf8").split("\n");
  lines[2] = "{not json";
  const dir = join(root, "written", "broken");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "metrics.jsonl"), lines.join("\n"));
  assertUserError(
    await imtrain(["report", dir, "--out", join(root, "broken.html")]),
    `${join(dir, "metrics.jsonl")}:3:`,
  );
  assert.ok(!existsSync(join(root, "broken.html")), "nothing written");
});

test("report - a run directory that does not exist: one line naming it", CLI_TIMEOUT, async () => {
  const missing = join(root, "no-such-run");
  assertUserError(await imtrain(["report", itDir, missing, "--out", join(root, "x.html")]), missing);
});

test("report - a directory without metrics.jsonl: one line naming it", CLI_TIMEOUT, async () => {
  const empty = join(root, "written", "empty");
  mkdirSync(empty, { recursive: true });
  assertUserError(await imtrain(["report", empty]), empty, "metrics.jsonl");
});

test("report - several runs need --out: one line saying so", CLI_TIMEOUT, async () => {
  assertUserError(await imtrain(["report", itDir, imDir]), "--out");
});

test(
  "report - one run: written to RUN_DIR/report.html, its path printed as one line",
  CLI_TIMEOUT,
  async () => {
    const result = await imtrain(["report", imDir]);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, join(imDir, "report.html") + "\n");
    assert.match(readFileSync(join(imDir, "report.html"), "utf8"), /^<!doctype html>/);
  },
);

test("writeRunReport - writes the page where asked and returns its absolute path", async () => {
  const out = join(root, "nested", "dir", "report.html");
  assert.equal(await writeRunReport([itDir], out), out);
  assert.deepEqual(
    embeddedData(readFileSync(out, "utf8")).runs[0]?.series.tokens_per_s,
    fileSeries(itDir, "tokens_per_s"),
  );
});
