import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  describeLengths,
  generateSynthetic,
  SYNTH_TASK_PHRASES,
  SYNTH_VOCABULARY,
  writeSyntheticJsonl,
  type AlpacaRecord,
} from "../../shared/data/synth.js";

// Re-derived here rather than imported, so a wrong transform in the generator cannot pass its own check.
const EXPECTED: Record<string, (words: string[]) => string[]> = {
  "reverse the words": (w) => [...w].reverse(),
  "repeat the words": (w) => w,
  "sort the words": (w) => [...w].sort(),
  "take every second word": (w) => w.filter((_, i) => i % 2 === 0),
  "uppercase the words": (w) => w.map((x) => x.toUpperCase()),
};

const PHRASE_AT_END = new RegExp(`^(?:(.*) )?(${Object.keys(EXPECTED).join("|")}) count (\\d+)$`);

function parse(record: AlpacaRecord): { filler: string[]; phrase: string; count: number; list: string[] } {
  const match = PHRASE_AT_END.exec(record.instruction);
  assert.ok(match, `instruction does not end in a task phrase: ${record.instruction}`);
  const [, filler, phrase, count] = match;
  assert.ok(phrase !== undefined && count !== undefined);
  return {
    filler: filler === undefined ? [] : filler.split(" "),
    phrase,
    count: Number(count),
    list: record.input.split(" "),
  };
}

void test("the same seed gives identical records and a different seed different ones", () => {
  const options = { examples: 50, seed: 7, instructionWords: 20, outputWords: 6 };
  assert.deepEqual(generateSynthetic(options), generateSynthetic(options));
  assert.notDeepEqual(generateSynthetic(options), generateSynthetic({ ...options, seed: 8 }));
});

for (const [instructionWords, outputWords] of [
  [40, 5],
  [8, 30],
  [16, 16],
] as const) {
  void test(`mean lengths meet instr ${instructionWords} / out ${outputWords} within 15% over 500 examples`, () => {
    const records = generateSynthetic({ examples: 500, seed: 3, instructionWords, outputWords });
    const { instructionWordsMean, outputWordsMean } = describeLengths(records);
    assert.ok(
      Math.abs(instructionWordsMean - instructionWords) <= 0.15 * instructionWords,
      `instruction mean ${instructionWordsMean}`,
    );
    assert.ok(
      Math.abs(outputWordsMean - outputWords) <= 0.15 * outputWords,
      `output mean ${outputWordsMean}`,
    );
    const outputLengths = records.map((r) => r.output.split(" ").length);
    assert.ok(Math.min(...outputLengths) >= 1);
    assert.ok(Math.max(...outputLengths) > Math.min(...outputLengths), "lengths vary around the mean");
  });
}

void test("every output is the stated transform of the input, cycled to the stated count", () => {
  const seen = new Set<string>();
  for (const [instructionWords, outputWords] of [
    [40, 5],
    [8, 30],
  ] as const) {
    for (const record of generateSynthetic({ examples: 500, seed: 11, instructionWords, outputWords })) {
      const { phrase, count, list } = parse(record);
      seen.add(phrase);
      const transform = EXPECTED[phrase];
      assert.ok(transform);
      const once = transform(list);
      const expected = Array.from({ length: count }, (_, i) => once[i % once.length]);
      assert.equal(record.output, expected.join(" "), JSON.stringify(record));
    }
  }
  assert.deepEqual([...seen].sort(), Object.keys(EXPECTED).sort());
  assert.deepEqual([...SYNTH_TASK_PHRASES].sort(), Object.keys(EXPECTED).sort());
});

void test("a short output comes from a list that needs no cycling", () => {
  for (const record of generateSynthetic({ examples: 200, seed: 5, instructionWords: 40, outputWords: 5 })) {
    const { phrase, count, list } = parse(record);
    assert.equal(list.length, phrase === "take every second word" ? 2 * count : count);
  }
});

void test("records hold only ASCII pseudo-words from a small syllable vocabulary", () => {
  assert.ok(SYNTH_VOCABULARY.length >= 30 && SYNTH_VOCABULARY.length <= 60);
  assert.equal(new Set(SYNTH_VOCABULARY).size, SYNTH_VOCABULARY.length);
  for (const word of SYNTH_VOCABULARY) assert.match(word, /^(?:[bdfgklmnprstvz][aeiou]){1,3}$/);
  const vocabulary = new Set(SYNTH_VOCABULARY);
  for (const record of generateSynthetic({ examples: 300, seed: 2, instructionWords: 25, outputWords: 8 })) {
    for (const text of [record.instruction, record.input, record.output])
      assert.match(text, /^[\x20-\x7e]+$/);
    const { filler, list } = parse(record);
    for (const word of [...filler, ...list]) assert.ok(vocabulary.has(word), word);
    for (const word of record.output.split(" ")) assert.ok(vocabulary.has(word.toLowerCase()), word);
  }
});

void test("generateSynthetic rejects options it cannot honour", () => {
  const ok = { examples: 1, seed: 1, instructionWords: 10, outputWords: 3 };
  assert.throws(() => generateSynthetic({ ...ok, examples: -1 }), /examples/);
  assert.throws(() => generateSynthetic({ ...ok, outputWords: 0 }), /outputWords/);
  assert.throws(() => generateSynthetic({ ...ok, instructionWords: Number.NaN }), /instructionWords/);
  assert.deepEqual(generateSynthetic({ ...ok, examples: 0 }), []);
});

void test("writeSyntheticJsonl writes one parseable record per line", () => {
  const dir = mkdtempSync(join(tmpdir(), "imtrain-synth-"));
  try {
    const records = generateSynthetic({ examples: 20, seed: 9, instructionWords: 12, outputWords: 4 });
    const path = join(dir, "nested", "synth.jsonl");
    writeSyntheticJsonl(path, records);
    const text = readFileSync(path, "utf8");
    assert.ok(text.endsWith("\n"));
    const lines = text.trimEnd().split("\n");
    assert.equal(lines.length, records.length);
    assert.deepEqual(
      lines.map((line) => JSON.parse(line) as unknown),
      records,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
