// `imtrain experiment --config F`: the grid file, read once into options with units in their names. YAML or
// JSON; checked with a schema (zod), and a wrong key or value is one line naming F:line. Paths in the file
// are relative to its folder, so a config and its data move together.
import { existsSync, readFileSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { LineCounter, parseDocument } from "yaml";
import { z } from "zod";
import { describeFileError, UserError } from "../shared/errors.js";
import { MODEL_PRESETS } from "../shared/model/config.js";
import type { RunParams } from "./results.js";

/** A data set of the grid: a file in any format train reads, or synthetic data made for the experiment. */
export type DatasetSource =
  | {
      readonly kind: "file";
      readonly file: string;
      readonly format: string;
      /** Skip records with an empty output (a few public Alpaca files have some), counting them. */
      readonly dropEmptyOutputs: boolean;
    }
  | {
      readonly kind: "synth";
      readonly examples: number;
      readonly instructionWords: number;
      readonly outputWords: number;
      readonly seed: number;
    };

export interface PretrainOptions {
  /** Data sets (under `datasets`) to pretrain on: never one the grid fine-tunes on. */
  readonly datasets: readonly string[];
  readonly model: string;
  readonly steps: number;
  /** Other train flags for the stage (batch size, lr, context length…). */
  readonly flags: Readonly<Record<string, string | number | boolean>>;
}

export interface ExperimentConfig {
  readonly file: string;
  readonly name: string;
  readonly datasets: ReadonlyMap<string, DatasetSource>;
  /** Held out of each data set (the same examples for every size and λ of a seed). */
  readonly heldOutExamples: number;
  /** The model runs start from, when there is no pretrain stage: a preset, a checkpoint or a config.json. */
  readonly model: string;
  readonly pretrain: PretrainOptions | undefined;
  /** Train flags every run shares (epochs or steps, batch size, lr, context length…). */
  readonly trainFlags: Readonly<Record<string, string | number | boolean>>;
  readonly grid: { readonly [K in keyof RunParams]: readonly RunParams[K][] };
  readonly bleu: { readonly examples: number; readonly maxNewTokens: number };
  /** Deadline of each child process (a train, a generate). */
  readonly runTimeoutMs: number;
}

/** Flags the experiment sets for every run itself: a config must not set them under `train`. */
const SET_BY_EXPERIMENT = [
  "data",
  "eval-data",
  "eval-fraction",
  "out",
  "resume",
  "model",
  "loss-mode",
  "prompt-loss-weight",
  "template-loss-weight",
  "kl-weight",
  "neftune-alpha",
  "seed",
  "config",
];

const flagValue = z.union([z.string(), z.number(), z.boolean()]);
const flags = z.record(z.string(), flagValue);
const nonEmpty = <T extends z.ZodType>(item: T) => z.array(item).min(1);
const weight = z.number().min(0).max(1);

const SCHEMA = z.strictObject({
  name: z.string().min(1).max(100),
  datasets: z
    .record(
      z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, "data set names are lowercase letters, digits, - and _"),
      z.union([
        z.strictObject({
          file: z.string().min(1),
          format: z.string().default("auto"),
          drop_empty_outputs: z.boolean().default(false),
        }),
        z.strictObject({
          synth: z.strictObject({
            examples: z.number().int().min(2),
            instruction_words: z.number().min(1),
            output_words: z.number().min(1),
            seed: z.number().int().default(1),
          }),
        }),
      ]),
    )
    .refine((sets) => Object.keys(sets).length > 0, "name at least one data set"),
  held_out_examples: z.number().int().min(1),
  model: z.string().min(1).default("tiny"),
  pretrain: z
    .strictObject({
      datasets: nonEmpty(z.string()),
      model: z.string().min(1),
      steps: z.number().int().min(1),
      train: flags.default({}),
    })
    .optional(),
  train: flags.default({}),
  grid: z.strictObject({
    dataset: nonEmpty(z.string()).optional(),
    train_examples: nonEmpty(z.number().int().min(1)),
    prompt_loss_weight: nonEmpty(weight),
    template_loss_weight: nonEmpty(weight).default([0]),
    kl_weight: nonEmpty(z.number().min(0)).default([0]),
    neftune_alpha: nonEmpty(z.number().min(0)).default([0]),
    seed: nonEmpty(z.number().int().min(0)),
  }),
  bleu: z
    .strictObject({
      examples: z.number().int().min(1).default(64),
      max_new_tokens: z.number().int().min(1).default(64),
    })
    .default({ examples: 64, max_new_tokens: 64 }),
  run_timeout_s: z.number().positive().default(3600),
});

function configError(file: string, line: number | undefined, reason: string): UserError {
  return new UserError(`--config ${file}${line === undefined ? "" : `:${line}`}: ${reason}`);
}

/** A path in the file, against the file's folder; a preset name stays a name. */
function pathIn(dir: string, value: string, names: readonly string[] = []): string {
  return isAbsolute(value) || names.includes(value) ? value : resolve(dir, value);
}

export function readExperimentConfig(file: string): ExperimentConfig {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    throw configError(file, undefined, describeFileError(error));
  }
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { version: "1.1", lineCounter });
  const [syntax] = document.errors;
  if (syntax !== undefined)
    throw configError(file, syntax.linePos?.[0].line, syntax.message.split("\n")[0] ?? syntax.code);
  const parsed = SCHEMA.safeParse(document.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = (issue?.path ?? []).map(String);
    // The line of the deepest key of the path that the file has.
    let line: number | undefined;
    for (let depth = path.length; depth > 0 && line === undefined; depth--) {
      const node = document.getIn(path.slice(0, depth), true) as { range?: [number] } | undefined;
      if (node?.range) line = lineCounter.linePos(node.range[0]).line;
    }
    throw configError(file, line, `${path.join(".") || "(top)"}: ${issue?.message ?? "invalid"}`);
  }
  const c = parsed.data;
  const dir = dirname(resolve(file));
  const datasets = new Map<string, DatasetSource>(
    Object.entries(c.datasets).map(([name, source]) => [
      name,
      "file" in source
        ? {
            kind: "file",
            file: pathIn(dir, source.file),
            format: source.format,
            dropEmptyOutputs: source.drop_empty_outputs,
          }
        : {
            kind: "synth",
            examples: source.synth.examples,
            instructionWords: source.synth.instruction_words,
            outputWords: source.synth.output_words,
            seed: source.synth.seed,
          },
    ]),
  );
  const pretrainSets = c.pretrain?.datasets ?? [];
  for (const name of pretrainSets)
    if (!datasets.has(name))
      throw configError(file, undefined, `pretrain.datasets: "${name}" is not under datasets`);
  const gridDatasets = c.grid.dataset ?? [...datasets.keys()].filter((name) => !pretrainSets.includes(name));
  for (const name of gridDatasets)
    if (!datasets.has(name))
      throw configError(file, undefined, `grid.dataset: "${name}" is not under datasets`);
  for (const section of [c.train, c.pretrain?.train ?? {}])
    for (const key of Object.keys(section))
      if (SET_BY_EXPERIMENT.includes(key))
        throw configError(file, undefined, `train.${key}: the experiment sets --${key} for each run itself`);
  const pretrain = c.pretrain && {
    datasets: pretrainSets,
    model: pathIn(dir, c.pretrain.model, Object.keys(MODEL_PRESETS)),
    steps: c.pretrain.steps,
    flags: c.pretrain.train,
  };
  // Pretraining on a fine-tuning set would confound "IM sees more text" with "IM overfits less".
  const fileOf = (name: string) => {
    const source = datasets.get(name);
    return source?.kind === "file" ? source.file : name;
  };
  for (const name of pretrainSets)
    for (const tuned of gridDatasets)
      if (fileOf(name) === fileOf(tuned))
        throw configError(
          file,
          undefined,
          `pretrain.datasets: "${name}" is fine-tuned on in the grid ("${tuned}")`,
        );
  const model = pathIn(dir, c.model, Object.keys(MODEL_PRESETS));
  return {
    file,
    name: c.name,
    datasets,
    heldOutExamples: c.held_out_examples,
    model,
    pretrain,
    trainFlags: c.train,
    grid: {
      dataset: gridDatasets,
      trainExamples: c.grid.train_examples,
      promptLossWeight: c.grid.prompt_loss_weight,
      templateLossWeight: c.grid.template_loss_weight,
      klWeight: c.grid.kl_weight,
      neftuneAlpha: c.grid.neftune_alpha,
      seed: c.grid.seed,
    },
    bleu: { examples: c.bleu.examples, maxNewTokens: c.bleu.max_new_tokens },
    runTimeoutMs: c.run_timeout_s * 1000,
  };
}

/** A --model that is neither a preset nor an existing path: one line before any run starts. */
export function checkModelExists(config: ExperimentConfig): void {
  if (config.pretrain === undefined && !(config.model in MODEL_PRESETS) && !existsSync(config.model))
    throw configError(
      config.file,
      undefined,
      `model: ${config.model} is not a preset (${Object.keys(MODEL_PRESETS).join(", ")}) and does not exist`,
    );
}

/** Every point of the grid, in a fixed order: data set, size, seed, then the loss knobs. */
export function gridRuns(config: ExperimentConfig): RunParams[] {
  const g = config.grid;
  const runs: RunParams[] = [];
  for (const dataset of g.dataset)
    for (const trainExamples of g.trainExamples)
      for (const seed of g.seed)
        for (const promptLossWeight of g.promptLossWeight)
          for (const templateLossWeight of g.templateLossWeight)
            for (const klWeight of g.klWeight)
              for (const neftuneAlpha of g.neftuneAlpha)
                runs.push({
                  dataset,
                  trainExamples,
                  promptLossWeight,
                  templateLossWeight,
                  klWeight,
                  neftuneAlpha,
                  seed,
                });
  return runs;
}

/** The run's folder name: every knob, so a changed grid never reuses another point's results. */
export function runId(p: RunParams): string {
  return `${p.dataset}-n${p.trainExamples}-lam${p.promptLossWeight}-tw${p.templateLossWeight}-kl${p.klWeight}-nef${p.neftuneAlpha}-s${p.seed}`;
}
