// `imtrain experiment`: the grid, run by run, through the same trainer a user runs. Each run goes
//   pending → training → generating → done | failed
// and is done once its folder holds summary.json and bleu.json: a rerun of the same command skips those and
// redoes any run it finds half-way (a crash or a Ctrl-C), so nothing finished is lost or repeated.
// results.json and report.html are rewritten after every run.
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { isAbsolute, join, relative } from "node:path";
import type { Conversation } from "../shared/data/conversation.js";
import { readDataFile } from "../shared/data/formats.js";
import { corpusBleu } from "../shared/eval/bleu.js";
import { UserError } from "../shared/errors.js";
import { JOB_NAME } from "../shared/protocol.js";
import { writeExperimentReport } from "../report/experiment-report.js";
import { formatDuration } from "../report/format.js";
import { writeFileSynced } from "../shared/model/checkpoint-manifest.js";
import { aggregate, imMinusIt, lambdaFits } from "./analysis.js";
import { runImtrain, stopChildren } from "./child.js";
import { BLEU_FILE, failedRun, isFinished, readRunResult, SUMMARY_FILE, type BleuRecord } from "./collect.js";
import { checkModelExists, gridRuns, runId, type ExperimentConfig } from "./config.js";
import { readDataset, splitFiles, writeConversations, type SplitFiles } from "./data-splits.js";
import { RESULTS_VERSION, type ExperimentResults, type RunParams, type RunResult } from "./results.js";

export interface ExperimentOptions {
  readonly outDir: string;
  /** Workers per run: 1 runs `train`, more run `launch --workers N`. */
  readonly workers: number;
  /** Runs at once, each a process (or a launch) of its own: one per free core or device. */
  readonly parallelRuns: number;
  readonly log: (line: string) => void;
}

type Flags = Readonly<Record<string, string | number | boolean>>;

function flagArgs(flags: Flags): string[] {
  return Object.entries(flags).flatMap(([key, value]) =>
    typeof value === "boolean" ? [value ? `--${key}` : `--no-${key}`] : [`--${key}`, String(value)],
  );
}

/** Whole or not at all: a crash never leaves half a file that looks whole. */
function writeJson(file: string, value: unknown): Promise<void> {
  return writeFileSynced(file, JSON.stringify(value, null, 2) + "\n");
}

/** The final assistant turn of each conversation: what a generation is compared with. */
function outputsOf(conversations: readonly Conversation[]): string[] {
  return conversations.map((c) => c.turns.at(-1)?.content ?? "");
}

/** A run's id as a --job name (one NATS subject token of at most 64 characters). */
export function jobName(id: string): string {
  const name = `exp-${id}`;
  if (JOB_NAME.test(name)) return name;
  // Characters replaced or the name cut: a hash of the whole id keeps distinct runs apart.
  const readable = name.replace(/[^A-Za-z0-9_-]/g, "_").slice(0, 55);
  return `${readable}-${createHash("sha256").update(id).digest("hex").slice(0, 8)}`;
}

export class Experiment {
  private readonly runsDir: string;
  private readonly dataDir: string;
  private readonly results = new Map<string, RunResult>();
  private baseModel: string;
  /** Set by stop(): no new run starts, and the ones in flight are left unfinished (redone by a rerun). */
  private stopping = false;
  /** Grid order, so results.json lists runs the same way however many ran at once. */
  private order = new Map<string, number>();
  /** results.json and the report are written one at a time, by whichever run finishes. */
  private writing: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: ExperimentConfig,
    private readonly options: ExperimentOptions,
  ) {
    this.runsDir = join(options.outDir, "runs");
    this.dataDir = join(options.outDir, "data");
    this.baseModel = config.model;
  }

  /** A signal: stop the child in flight and start nothing more. */
  stop(): void {
    this.stopping = true;
    stopChildren();
  }

  get stopped(): boolean {
    return this.stopping;
  }

  /** Runs what is not done yet; resolves to the results (failed runs included, with their reason). */
  async run(): Promise<ExperimentResults> {
    const { log } = this.options;
    checkModelExists(this.config);
    mkdirSync(this.runsDir, { recursive: true });
    const runs = gridRuns(this.config);
    const splits = await this.writeSplits();
    if (this.config.pretrain) this.baseModel = await this.pretrain();
    this.order = new Map(runs.map((params, index) => [runId(params), index]));
    const pending = runs.filter((params) => !this.readFinished(params));
    log(
      `experiment ${this.config.name}: ${runs.length} runs (${runs.length - pending.length} already done) in ${this.options.outDir}; base model ${this.baseModel}`,
    );
    await this.runPending(pending, splits, runs.length);
    // Also when every run was already done: a rerun regenerates results.json and the report from them.
    return this.writeResults();
  }

  /** Takes a finished run's results from its folder; false if it is not finished. */
  private readFinished(params: RunParams): boolean {
    const id = runId(params);
    const runDir = join(this.runsDir, id);
    if (!isFinished(runDir)) return false;
    this.results.set(id, readRunResult(id, params, runDir));
    return true;
  }

  /** Runs `pending`, up to parallelRuns at once, each taking the next when it finishes; logs each. */
  private async runPending(
    pending: readonly RunParams[],
    splits: ReadonlyMap<string, SplitFiles>,
    total: number,
  ): Promise<void> {
    const started = performance.now();
    let next = 0;
    let ran = 0;
    const runNext = async (): Promise<void> => {
      while (!this.stopping && next < pending.length) {
        const params = pending[next++] as RunParams;
        const id = runId(params);
        const runStarted = performance.now();
        const split = splits.get(`${params.dataset}/${params.seed}`) as SplitFiles;
        const result = await this.runOne(id, params, join(this.runsDir, id), split);
        if (result === undefined) return; // stopped mid-run: left for the rerun
        ran++;
        this.results.set(id, result);
        // Wall time per finished run, however many run at once.
        const left = ((performance.now() - started) / 1000 / ran) * (pending.length - ran);
        const what =
          result.status === "done"
            ? `held-out output loss ${result.finalHeldOutOutputLoss.toFixed(4)}, BLEU ${result.bleu.toFixed(2)}`
            : `FAILED: ${result.error ?? ""}`;
        this.options.log(
          `[${this.results.size}/${total}] ${id}: ${what} (${formatDuration((performance.now() - runStarted) / 1000)}; about ${formatDuration(left)} left)`,
        );
        await this.writeResults();
      }
    };
    const lanes = Math.min(this.options.parallelRuns, pending.length);
    await Promise.all(Array.from({ length: lanes }, runNext));
  }

  /** Held-out and training files for each (data set, seed) of the grid. */
  private async writeSplits(): Promise<Map<string, SplitFiles>> {
    const splits = new Map<string, SplitFiles>();
    for (const dataset of this.config.grid.dataset) {
      const source = this.config.datasets.get(dataset);
      if (source === undefined) continue;
      const conversations = readDataset(dataset, source, this.dataDir, this.options.log);
      for (const seed of this.config.grid.seed)
        splits.set(
          `${dataset}/${seed}`,
          await splitFiles(this.config, dataset, seed, conversations, this.dataDir),
        );
    }
    return splits;
  }

  /** The base model: a plain language-model loss (every token weighs 1) on the pretraining text. */
  private async pretrain(): Promise<string> {
    const pretrain = this.config.pretrain;
    if (pretrain === undefined) return this.config.model;
    const dir = join(this.options.outDir, "pretrain");
    const checkpoint = join(dir, "checkpoint");
    if (existsSync(join(dir, SUMMARY_FILE))) return checkpoint;
    rmSync(dir, { recursive: true, force: true });
    const corpus = join(this.dataDir, "pretrain.jsonl");
    const text = pretrain.datasets.flatMap((name) => {
      const source = this.config.datasets.get(name);
      return source === undefined ? [] : readDataset(name, source, this.dataDir, this.options.log);
    });
    if (!existsSync(corpus)) await writeConversations(corpus, text);
    this.options.log(
      `pretraining the base model: ${pretrain.model}, ${pretrain.steps} steps on ${pretrain.datasets.join(", ")} (${text.length} examples)`,
    );
    mkdirSync(dir, { recursive: true });
    const result = await runImtrain(
      [
        "train",
        ...["--data", corpus, "--model", pretrain.model, "--steps", String(pretrain.steps), "--out", dir],
        ...["--prompt-loss-weight", "1", "--template-loss-weight", "1", "--eval-fraction", "0.02"],
        ...flagArgs(pretrain.flags),
      ],
      join(this.options.outDir, "pretrain.log"),
      this.config.runTimeoutMs,
    );
    if (result.status !== 0)
      throw new UserError(
        `pretraining failed${result.timedOut ? " (deadline)" : ""}: ${result.lastError} (log: ${join(this.options.outDir, "pretrain.log")})`,
      );
    this.options.log(`base model: ${checkpoint}`);
    return checkpoint;
  }

  /** One run, trained then scored; undefined if the experiment was stopped meanwhile. */
  private async runOne(
    id: string,
    p: RunParams,
    runDir: string,
    split: SplitFiles,
  ): Promise<RunResult | undefined> {
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    if (existsSync(runDir)) {
      this.options.log(`${id}: redoing an unfinished run`);
      rmSync(runDir, { recursive: true, force: true });
    }
    mkdirSync(runDir, { recursive: true });
    const logFile = join(runDir, "experiment.log");
    const trainFile = split.train.get(p.trainExamples) ?? "";
    // Its own job name: runs at once (or a shared $NATS_URL) must not take each other's subjects.
    const trainer =
      this.options.workers > 1
        ? ["launch", "--workers", String(this.options.workers), "--job", jobName(id)]
        : ["train"];
    const trained = await runImtrain(
      [
        ...trainer,
        ...["--data", trainFile, "--eval-data", split.heldOut, "--model", this.baseModel, "--out", runDir],
        ...[
          "--prompt-loss-weight",
          String(p.promptLossWeight),
          "--template-loss-weight",
          String(p.templateLossWeight),
        ],
        ...[
          "--kl-weight",
          String(p.klWeight),
          "--neftune-alpha",
          String(p.neftuneAlpha),
          "--seed",
          String(p.seed),
        ],
        ...flagArgs(this.config.trainFlags),
      ],
      logFile,
      this.config.runTimeoutMs,
    );
    if (this.stopping) return undefined;
    if (trained.status !== 0 || !existsSync(join(runDir, SUMMARY_FILE)))
      return failedRun(
        id,
        p,
        `train: ${trained.timedOut ? "deadline passed" : trained.lastError}`,
        seconds(),
      );
    // Greedy generations on training prompts, against the outputs trained on: how much the model copies.
    const prompts = readDataFile(trainFile, "auto").slice(0, this.config.bleu.examples);
    const generated = await runImtrain(
      [
        "generate",
        ...["--model", runDir, "--data", trainFile, "--limit", String(prompts.length)],
        ...["--max-new-tokens", String(this.config.bleu.maxNewTokens)],
      ],
      logFile,
      this.config.runTimeoutMs,
    );
    if (this.stopping) return undefined;
    if (generated.status !== 0)
      return failedRun(
        id,
        p,
        `generate: ${generated.timedOut ? "deadline passed" : generated.lastError}`,
        seconds(),
      );
    const completions = generated.stdout
      .split("\n")
      .filter(Boolean)
      .map((line) => (JSON.parse(line) as { completion: string }).completion);
    const bleu: BleuRecord = {
      ...corpusBleu(completions, [outputsOf(prompts)]),
      examples: completions.length,
      elapsed_s: seconds(),
    };
    await writeJson(join(runDir, BLEU_FILE), bleu);
    return readRunResult(id, p, runDir);
  }

  private snapshot(): ExperimentResults {
    const position = (run: RunResult) => this.order.get(run.id) ?? Infinity;
    const runs = [...this.results.values()].sort((a, b) => position(a) - position(b));
    return {
      version: RESULTS_VERSION,
      name: this.config.name,
      config: this.config.file,
      generatedAt: new Date().toISOString(),
      baseModel: this.recordedBaseModel(),
      runs,
      aggregates: aggregate(runs),
      imMinusIt: imMinusIt(runs),
      fits: lambdaFits(runs),
    };
  }

  /** The pretrain stage's checkpoint by its path in the experiment's folder, so results.json reads the same
   *  wherever the folder is copied; a preset or a user's model as given. */
  private recordedBaseModel(): string {
    const inside = relative(this.options.outDir, this.baseModel);
    return this.config.pretrain !== undefined && !inside.startsWith("..") && !isAbsolute(inside)
      ? inside
      : this.baseModel;
  }

  private writeResults(): Promise<ExperimentResults> {
    const write = async () => {
      const results = this.snapshot();
      await writeJson(join(this.options.outDir, "results.json"), results);
      await writeExperimentReport(results, join(this.options.outDir, "report.html"));
      return results;
    };
    const written = this.writing.then(write, write);
    this.writing = written;
    return written;
  }
}
