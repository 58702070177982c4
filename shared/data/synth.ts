// Synthetic Alpaca-style data for tests and the demo. No third-party text: every content word is a
// pseudo-word of 1-3 consonant-vowel syllables from a fixed 48-word vocabulary (the same for every seed,
// so a train file and a held-out file share it).
//
// The task: `input` holds a list of pseudo-words; the instruction ends with a fixed phrase naming one of
// five transforms and the number of output words, e.g. "... reverse the words count 5":
//   reverse the words       -> the list reversed
//   repeat the words        -> the list as is
//   sort the words          -> the list in ASCII order
//   take every second word  -> the words at positions 0, 2, 4, ...
//   uppercase the words     -> each word in capitals
// The output is the transformed list cycled (or cut) to exactly "count" words. Before the phrase the
// instruction holds irrelevant filler pseudo-words, so the instruction can be long while the output stays
// short: the regime where loss on instructions (IM) is expected to help over outputs only (IT).
//
// Why a tiny byte-level GPT can learn it: the output is a deterministic function of instruction and input
// that copies their words (one attention head can copy), the phrase for each transform never varies, the
// vocabulary is small, and phrase and list sit right before the response, so they stay in a short context
// however long the filler is. Held-out output loss can thus fall well below the unigram baseline.
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

import { OptionError } from "../errors.js";
import { mulberry32 } from "../random.js";

export interface SynthOptions {
  /** Number of records to generate. */
  examples: number;
  /** PRNG seed (taken as a 32-bit unsigned integer). */
  seed: number;
  /** Mean length in words of instruction plus input; per record it varies by about ±30%, at least 1. */
  instructionWords: number;
  /** Mean length in words of the output; per record it varies by about ±30%, at least 1. */
  outputWords: number;
}

export interface AlpacaRecord {
  instruction: string;
  input: string;
  output: string;
}

interface TaskKind {
  readonly phrase: string;
  /** List length whose transform has exactly `outputWords` words. */
  readonly naturalInputLength: (outputWords: number) => number;
  readonly apply: (words: readonly string[]) => string[];
}

const TASKS: readonly TaskKind[] = [
  { phrase: "reverse the words", naturalInputLength: (n) => n, apply: (w) => [...w].reverse() },
  { phrase: "repeat the words", naturalInputLength: (n) => n, apply: (w) => [...w] },
  // Code-unit order, not localeCompare, so the rule is the same on every machine.
  {
    phrase: "sort the words",
    naturalInputLength: (n) => n,
    apply: (w) => [...w].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)),
  },
  {
    phrase: "take every second word",
    naturalInputLength: (n) => 2 * n,
    apply: (w) => w.filter((_, i) => i % 2 === 0),
  },
  {
    phrase: "uppercase the words",
    naturalInputLength: (n) => n,
    apply: (w) => w.map((x) => x.toUpperCase()),
  },
];

/** The fixed instruction phrases, one per task kind. */
export const SYNTH_TASK_PHRASES: readonly string[] = TASKS.map((t) => t.phrase);

/** The word between the phrase and the output word count. */
const COUNT_WORD = "count";

const CONSONANTS = "bdfgklmnprstvz";
const VOWELS = "aeiou";
const VOCABULARY_SIZE = 48;

/** Built once from a fixed seed, independent of SynthOptions.seed, so every generated file shares it. */
function buildVocabulary(): readonly string[] {
  const rand = mulberry32(0x5eed);
  const reserved = new Set([...TASKS.flatMap((t) => t.phrase.split(" ")), COUNT_WORD]);
  const words = new Set<string>();
  while (words.size < VOCABULARY_SIZE) {
    // Mostly short words keep a 40-word instruction near 200 bytes, inside a small byte-level context.
    const r = rand();
    const syllables = r < 0.3 ? 1 : r < 0.8 ? 2 : 3;
    let word = "";
    for (let s = 0; s < syllables; s++) word += pick(CONSONANTS, rand) + pick(VOWELS, rand);
    if (!reserved.has(word)) words.add(word);
  }
  return [...words];
}

function pick<T>(items: ArrayLike<T>, rand: () => number): T {
  const item = items[Math.floor(rand() * items.length)];
  if (item === undefined) throw new Error("pick from an empty list");
  return item;
}

/** The 48 lowercase pseudo-words every list and filler is drawn from. */
export const SYNTH_VOCABULARY: readonly string[] = buildVocabulary();

const LENGTH_JITTER = 0.3;

function jitteredLength(mean: number, rand: () => number): number {
  return Math.max(1, Math.round(mean * (1 - LENGTH_JITTER + 2 * LENGTH_JITTER * rand())));
}

function checkOptions(options: SynthOptions): void {
  if (!Number.isSafeInteger(options.examples) || options.examples < 0) {
    throw new OptionError("examples", `must be a non-negative integer, got ${options.examples}`);
  }
  if (!Number.isSafeInteger(options.seed)) {
    throw new OptionError("seed", `must be an integer, got ${options.seed}`);
  }
  for (const key of ["instructionWords", "outputWords"] as const) {
    const value = options[key];
    if (!Number.isFinite(value) || value < 1) {
      throw new OptionError(key, `must be a number >= 1, got ${value}`);
    }
  }
}

/**
 * Deterministic for a seed. Instruction length has a floor of the task phrase plus "count N" plus one
 * list word (6-7 words); below that the requested mean cannot be met.
 */
export function generateSynthetic(options: SynthOptions): AlpacaRecord[] {
  checkOptions(options);
  const rand = mulberry32(options.seed);
  const records: AlpacaRecord[] = [];
  for (let e = 0; e < options.examples; e++) {
    const task = pick(TASKS, rand);
    const outputLength = jitteredLength(options.outputWords, rand);
    const instructionTarget = jitteredLength(options.instructionWords, rand);
    const fixedWords = task.phrase.split(" ").length + 2;
    // Prefer the list whose transform is exactly the output; if the instruction budget is too small, a
    // shorter list is cycled to length, so long outputs from short instructions stay possible.
    const listLength = Math.max(
      1,
      Math.min(task.naturalInputLength(outputLength), instructionTarget - fixedWords),
    );
    const fillerLength = Math.max(0, instructionTarget - fixedWords - listLength);
    const list = Array.from({ length: listLength }, () => pick(SYNTH_VOCABULARY, rand));
    const filler = Array.from({ length: fillerLength }, () => pick(SYNTH_VOCABULARY, rand));
    const transformed = task.apply(list);
    // A list of >= 1 word never transforms to nothing, so the fallback is unreachable.
    const output = Array.from({ length: outputLength }, (_, i) => transformed[i % transformed.length] ?? "");
    records.push({
      instruction: [...filler, task.phrase, COUNT_WORD, String(outputLength)].join(" "),
      input: list.join(" "),
      output: output.join(" "),
    });
  }
  return records;
}

/** One JSON object per line (fields instruction, input, output), creating the parent folder. */
export function writeSyntheticJsonl(path: string, records: readonly AlpacaRecord[]): void {
  mkdirSync(dirname(path), { recursive: true });
  const lines = records.map((r) =>
    JSON.stringify({ instruction: r.instruction, input: r.input, output: r.output }),
  );
  writeFileSync(path, lines.length > 0 ? lines.join("\n") + "\n" : "");
}

function countWords(text: string): number {
  return text.split(/\s+/).filter((w) => w.length > 0).length;
}

/** Mean words per record of instruction plus input, and of output (whitespace-separated); 0 when empty. */
export function describeLengths(records: readonly AlpacaRecord[]): {
  instructionWordsMean: number;
  outputWordsMean: number;
} {
  if (records.length === 0) return { instructionWordsMean: 0, outputWordsMean: 0 };
  let instructionWords = 0;
  let outputWords = 0;
  for (const r of records) {
    instructionWords += countWords(r.instruction) + countWords(r.input);
    outputWords += countWords(r.output);
  }
  return {
    instructionWordsMean: instructionWords / records.length,
    outputWordsMean: outputWords / records.length,
  };
}
