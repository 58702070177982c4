// The files an experiment's runs train and evaluate on, written once under DIR/data/: per data set and seed,
// a held-out file and nested training subsets (the first N of a seeded order, so 200 ⊂ 1,000, and the held-out
// examples are the same for every size and λ), and the pretraining text. Written in a format train reads back
// to the same conversations: Alpaca records where every conversation is one exchange, chat messages else.
import { existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Conversation } from "../shared/data/conversation.js";
import { readDataFile, type DataFormat } from "../shared/data/formats.js";
import { generateSynthetic, writeSyntheticJsonl } from "../shared/data/synth.js";
import { UserError } from "../shared/errors.js";
import { writeFileSynced } from "../shared/model/checkpoint-manifest.js";
import { hashKeys, mulberry32, permutation } from "../shared/random.js";
import type { DatasetSource, ExperimentConfig } from "./config.js";

export interface SplitFiles {
  readonly heldOut: string;
  /** Training subset file by size. */
  readonly train: ReadonlyMap<number, string>;
}

/** One exchange (an optional input beside the instruction), as an Alpaca record keeps it exactly. */
function isSingleExchange(c: Conversation): boolean {
  return c.turns.length === 2 && c.turns[0]?.role === "user" && c.turns[1]?.role === "assistant";
}

function recordOf(c: Conversation, alpaca: boolean): object {
  if (alpaca) {
    const [user, assistant] = c.turns;
    return { instruction: user?.content ?? "", input: user?.input ?? "", output: assistant?.content ?? "" };
  }
  // Chat messages have no input field: it follows the instruction, as the templates place it.
  return {
    messages: c.turns.map((t) => ({
      role: t.role,
      content: t.input ? `${t.content}\n${t.input}` : t.content,
    })),
  };
}

/** Writes conversations as JSONL, atomically (a crash never leaves half a file that looks whole). */
export async function writeConversations(
  file: string,
  conversations: readonly Conversation[],
): Promise<void> {
  const alpaca = conversations.every(isSingleExchange);
  mkdirSync(dirname(file), { recursive: true });
  await writeFileSynced(file, conversations.map((c) => JSON.stringify(recordOf(c, alpaca)) + "\n").join(""));
}

/** A data set's conversations; synthetic ones are generated into DIR/data first, so runs read a file. */
export function readDataset(
  name: string,
  source: DatasetSource,
  dataDir: string,
  log: (line: string) => void,
): Conversation[] {
  if (source.kind === "file") {
    let empty = 0;
    const conversations = readDataFile(
      source.file,
      source.format as DataFormat | "auto",
      source.dropEmptyOutputs ? { onEmptyOutput: () => empty++ } : {},
    );
    if (empty > 0)
      log(`data set ${name}: ${empty} records with an empty output skipped (drop_empty_outputs)`);
    return conversations;
  }
  const file = join(dataDir, `${name}.jsonl`);
  if (!existsSync(file))
    writeSyntheticJsonl(
      file,
      generateSynthetic({
        examples: source.examples,
        seed: source.seed,
        instructionWords: source.instructionWords,
        outputWords: source.outputWords,
      }),
    );
  return readDataFile(file, "alpaca");
}

/** Held-out and training files of `dataset` for `seed`, written if missing. */
export async function splitFiles(
  config: ExperimentConfig,
  dataset: string,
  seed: number,
  conversations: readonly Conversation[],
  dataDir: string,
): Promise<SplitFiles> {
  const sizes = [...new Set(config.grid.trainExamples)].sort((a, b) => a - b);
  const largest = sizes.at(-1) ?? 0;
  const needed = config.heldOutExamples + largest;
  if (conversations.length < needed)
    throw new UserError(
      `${config.file}: data set "${dataset}" has ${conversations.length} examples, fewer than held_out_examples ${config.heldOutExamples} + the largest train_examples ${largest}`,
    );
  const order = permutation(conversations.length, mulberry32(hashKeys(seed, 0xe7a1)));
  const pick = (from: number, to: number) =>
    [...order.subarray(from, to)].map((i) => conversations[i] as Conversation);
  const dir = join(dataDir, dataset, `seed-${seed}`);
  const heldOut = join(dir, "held-out.jsonl");
  if (!existsSync(heldOut)) await writeConversations(heldOut, pick(0, config.heldOutExamples));
  const train = new Map<number, string>();
  for (const size of sizes) {
    const file = join(dir, `train-${size}.jsonl`);
    if (!existsSync(file))
      await writeConversations(file, pick(config.heldOutExamples, config.heldOutExamples + size));
    train.set(size, file);
  }
  return { heldOut, train };
}
