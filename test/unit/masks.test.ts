// Loss masks checked by hand. With the byte tokenizer a token is a UTF-8 byte (and 256 is `</s>`), so the
// expected ids are written as the literal template text, and every region of it is given its weight here,
// independently of template.ts and encode.ts.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { fileURLToPath } from "node:url";

import { UserError } from "../../shared/errors.js";
import { encodeConversations, type Dataset, type EncodingOptions } from "../../shared/data/dataset.js";
import type { Truncation } from "../../shared/data/encode.js";
import { readDataFile, type DataFormat } from "../../shared/data/formats.js";
import { ByteTokenizer } from "../../shared/data/tokenizers/byte.js";

const CLI = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../cli/main.js");
const EOS_ID = 256;

const fixtureDir = fs.mkdtempSync(path.join(os.tmpdir(), "imtrain-masks-"));
let fixtureCount = 0;
after(() => fs.rmSync(fixtureDir, { recursive: true, force: true }));

function writeJsonl(name: string, ...records: unknown[]): string {
  fixtureCount++;
  const file = path.join(fixtureDir, `${fixtureCount}-${name}`);
  fs.writeFileSync(file, records.map((record) => JSON.stringify(record)).join("\n") + "\n");
  return file;
}

// ---- Expected masks, built by hand ---------------------------------------------------------------------------

/** A run of text (every UTF-8 byte of it) or the end token, and the weight each of its tokens should get. */
type Region =
  { readonly text: string; readonly weight: number } | { readonly eos: true; readonly weight: number };

const text = (value: string, weight: number): Region => ({ text: value, weight });
const eos = (weight: number): Region => ({ eos: true, weight });

interface Mask {
  readonly ids: number[];
  readonly weights: number[];
}

function expectedMask(regions: readonly Region[]): Mask {
  const ids: number[] = [];
  const weights: number[] = [];
  for (const region of regions) {
    const regionIds = "eos" in region ? [EOS_ID] : [...Buffer.from(region.text, "utf8")];
    for (const id of regionIds) {
      ids.push(id);
      weights.push(region.weight);
    }
  }
  // Nothing predicts the first token.
  if (weights.length > 0) weights[0] = 0;
  return { ids, weights };
}

function maskOf(dataset: Dataset, index: number): Mask {
  const example = dataset.examples[index];
  assert.ok(example, `expected an example at position ${index}`);
  return { ids: [...example.ids], weights: [...example.weights] };
}

// ---- Encoding through the real reader -------------------------------------------------------------------------

interface EncodeOptions {
  readonly format?: DataFormat | "auto";
  readonly template?: EncodingOptions["template"];
  readonly lambda?: number;
  readonly templateWeight?: number;
  readonly lastTurnOnly?: boolean;
  readonly contextLength?: number;
  readonly truncation?: Truncation;
}

function encodeFile(file: string, options: EncodeOptions = {}): Dataset {
  const format = options.format ?? "auto";
  return encodeConversations(file, readDataFile(file, format), new ByteTokenizer(), {
    format,
    template: options.template ?? "tulu",
    weighting: {
      promptLossWeight: options.lambda ?? 0,
      templateLossWeight: options.templateWeight ?? 0,
    },
    lastTurnOnly: options.lastTurnOnly ?? false,
    contextLength: options.contextLength ?? 2048,
    truncation: options.truncation ?? "prompt",
  });
}

/** The tulu rendering of one user turn (with optional input) answered once, with λ on prompt text. */
function tuluExchange(
  instruction: string,
  input: string | undefined,
  output: string,
  lambda: number,
  templateWeight: number,
): Region[] {
  const T = templateWeight;
  return [
    text("<|user|>\n", T),
    text(instruction, lambda),
    ...(input === undefined ? [] : [text("\n", T), text(input, lambda)]),
    text("\n<|assistant|>\n", T),
    text(output, 1),
    eos(1),
  ];
}

// ---- Formats ----------------------------------------------------------------------------------------------------

test("alpaca with input, IT (λ=0): only the output and its </s> weigh 1, instruction, input and markers 0", () => {
  const file = writeJsonl("alpaca.jsonl", { instruction: "Add them.", input: "2 and 3", output: "5" });
  const dataset = encodeFile(file, { lambda: 0 });
  assert.equal(dataset.examples.length, 1);
  assert.deepEqual(
    maskOf(dataset, 0),
    expectedMask([
      text("<|user|>\n", 0),
      text("Add them.", 0),
      text("\n", 0),
      text("2 and 3", 0),
      text("\n<|assistant|>\n", 0),
      text("5", 1),
      eos(1),
    ]),
  );
  // Spot-check the literal ids: "5" then </s> close the sequence.
  assert.deepEqual(maskOf(dataset, 0).ids.slice(-2), [0x35, EOS_ID]);
});

test("alpaca with input, IM (λ=1): instruction and input weigh 1 too, the \\n between them is template (0)", () => {
  const file = writeJsonl("alpaca.jsonl", { instruction: "Add them.", input: "2 and 3", output: "5" });
  assert.deepEqual(
    maskOf(encodeFile(file, { lambda: 1 }), 0),
    expectedMask([
      text("<|user|>\n", 0),
      text("Add them.", 1),
      text("\n", 0),
      text("2 and 3", 1),
      text("\n<|assistant|>\n", 0),
      text("5", 1),
      eos(1),
    ]),
  );
});

test("alpaca with input, λ=0.5 and template weight 0.25: prompt 0.5, markers and separators 0.25", () => {
  const file = writeJsonl("alpaca.jsonl", { instruction: "Add them.", input: "2 and 3", output: "5" });
  assert.deepEqual(
    maskOf(encodeFile(file, { lambda: 0.5, templateWeight: 0.25 }), 0),
    expectedMask([
      text("<|user|>\n", 0.25),
      text("Add them.", 0.5),
      text("\n", 0.25),
      text("2 and 3", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("5", 1),
      eos(1),
    ]),
  );
});

test("alpaca without input, and with an empty or blank input: no input block is rendered", () => {
  const file = writeJsonl(
    "alpaca-no-input.jsonl",
    { instruction: "Name a colour.", output: "Blue." },
    { instruction: "Name a colour.", input: "", output: "Blue." },
    { instruction: "Name a colour.", input: "   ", output: "Blue." },
  );
  const dataset = encodeFile(file, { lambda: 0.5, templateWeight: 0.25 });
  const expected = expectedMask([
    text("<|user|>\n", 0.25),
    text("Name a colour.", 0.5),
    text("\n<|assistant|>\n", 0.25),
    text("Blue.", 1),
    eos(1),
  ]);
  assert.equal(dataset.examples.length, 3);
  for (let i = 0; i < 3; i++) assert.deepEqual(maskOf(dataset, i), expected, `record ${i}`);
});

test("dolly: context is the input and response the output; an empty context is omitted", () => {
  const file = writeJsonl(
    "dolly.jsonl",
    { instruction: "Who wrote it?", context: "Hamlet, 1600.", response: "Shakespeare", category: "qa" },
    { instruction: "Say hi.", context: "", response: "Hi", category: "open_qa" },
  );
  const dataset = encodeFile(file, { lambda: 0.5, templateWeight: 0.25 });
  assert.deepEqual(
    maskOf(dataset, 0),
    expectedMask(tuluExchange("Who wrote it?", "Hamlet, 1600.", "Shakespeare", 0.5, 0.25)),
  );
  assert.deepEqual(maskOf(dataset, 1), expectedMask(tuluExchange("Say hi.", undefined, "Hi", 0.5, 0.25)));
});

const CHAT_RECORD = {
  messages: [
    { role: "system", content: "Be brief." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello" },
    { role: "user", content: "Bye" },
    { role: "assistant", content: "Ciao" },
  ],
};

test("chat, multi-turn with system: every assistant turn and its </s> weigh 1; later markers start with \\n", () => {
  const file = writeJsonl("chat.jsonl", CHAT_RECORD);
  assert.deepEqual(
    maskOf(encodeFile(file, { lambda: 0.5, templateWeight: 0.25 }), 0),
    expectedMask([
      text("<|system|>\n", 0.25),
      text("Be brief.", 0.5),
      text("\n<|user|>\n", 0.25),
      text("Hi", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("Hello", 1),
      eos(1),
      text("\n<|user|>\n", 0.25),
      text("Bye", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("Ciao", 1),
      eos(1),
    ]),
  );
});

test("chat, last-turn-only: an earlier assistant turn weighs λ and its </s> the template weight", () => {
  const file = writeJsonl("chat.jsonl", CHAT_RECORD);
  assert.deepEqual(
    maskOf(encodeFile(file, { lambda: 0.5, templateWeight: 0.25, lastTurnOnly: true }), 0),
    expectedMask([
      text("<|system|>\n", 0.25),
      text("Be brief.", 0.5),
      text("\n<|user|>\n", 0.25),
      text("Hi", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("Hello", 0.5),
      eos(0.25),
      text("\n<|user|>\n", 0.25),
      text("Bye", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("Ciao", 1),
      eos(1),
    ]),
  );
});

test("chat, last-turn-only under IT: only the final reply and its </s> weigh anything", () => {
  const file = writeJsonl("chat.jsonl", CHAT_RECORD);
  const mask = maskOf(encodeFile(file, { lambda: 0, lastTurnOnly: true }), 0);
  const ciao = [...Buffer.from("Ciao", "utf8")];
  const weighted = mask.ids.filter((_, i) => mask.weights[i] !== 0);
  assert.deepEqual(weighted, [...ciao, EOS_ID]);
  assert.deepEqual(mask.ids.slice(-ciao.length - 1), [...ciao, EOS_ID]);
});

test("prompt-completion: the prompt is the user turn and the completion the output", () => {
  const file = writeJsonl("pc.jsonl", { prompt: "Capital of France?", completion: " Paris" });
  const dataset = encodeFile(file, { lambda: 1 });
  assert.deepEqual(
    maskOf(dataset, 0),
    expectedMask([
      text("<|user|>\n", 0),
      text("Capital of France?", 1),
      text("\n<|assistant|>\n", 0),
      text(" Paris", 1),
      eos(1),
    ]),
  );
});

test("self-instruct with 2 instances: two examples sharing the instruction and the record's line", () => {
  const file = writeJsonl(
    "self-instruct.jsonl",
    {
      instruction: "Sort the list.",
      instances: [
        { input: "3,1,2", output: "1,2,3" },
        { input: "", output: "[]" },
      ],
    },
    { instruction: "Reverse it.", instances: [{ input: "ab", output: "ba" }] },
  );
  const dataset = encodeFile(file, { lambda: 0.5, templateWeight: 0.25 });
  assert.equal(dataset.examples.length, 3);
  assert.deepEqual(
    dataset.examples.map((e) => [e.index, e.source.line]),
    [
      [0, 1],
      [1, 1],
      [2, 2],
    ],
  );
  assert.deepEqual(
    maskOf(dataset, 0),
    expectedMask(tuluExchange("Sort the list.", "3,1,2", "1,2,3", 0.5, 0.25)),
  );
  assert.deepEqual(
    maskOf(dataset, 1),
    expectedMask(tuluExchange("Sort the list.", undefined, "[]", 0.5, 0.25)),
  );
  assert.deepEqual(maskOf(dataset, 2), expectedMask(tuluExchange("Reverse it.", "ab", "ba", 0.5, 0.25)));
});

// ---- Text and templates -------------------------------------------------------------------------------------

test("non-ASCII text: every byte of a multi-byte character carries the character's weight", () => {
  const file = writeJsonl("utf8.jsonl", { instruction: "Übersetze", input: "東京", output: "Tōkyō 🗼" });
  const mask = maskOf(encodeFile(file, { lambda: 0.5, templateWeight: 0.25 }), 0);
  assert.deepEqual(
    mask,
    expectedMask([
      text("<|user|>\n", 0.25),
      text("Übersetze", 0.5),
      text("\n", 0.25),
      text("東京", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("Tōkyō 🗼", 1),
      eos(1),
    ]),
  );
  // The same by literal bytes: Ü is 2 bytes, 東 and 京 are 3, ō is 2, 🗼 is 4.
  const userMarker = 9;
  assert.deepEqual(mask.ids.slice(userMarker, userMarker + 2), [0xc3, 0x9c]);
  assert.deepEqual(mask.weights.slice(userMarker, userMarker + 2), [0.5, 0.5]);
  const inputStart = userMarker + 10 + 1; // "Übersetze" is 10 bytes (Ü is 2), then the "\n" separator
  assert.deepEqual(mask.ids.slice(inputStart, inputStart + 6), [0xe6, 0x9d, 0xb1, 0xe4, 0xba, 0xac]);
  assert.deepEqual(mask.weights.slice(inputStart, inputStart + 6), [0.5, 0.5, 0.5, 0.5, 0.5, 0.5]);
  assert.deepEqual(mask.ids.slice(-5), [0xf0, 0x9f, 0x97, 0xbc, EOS_ID]);
  assert.deepEqual(mask.weights.slice(-5), [1, 1, 1, 1, 1]);
  const outputBytes = [0x54, 0xc5, 0x8d, 0x6b, 0x79, 0xc5, 0x8d, 0x20, 0xf0, 0x9f, 0x97, 0xbc];
  assert.deepEqual(mask.ids.slice(-1 - outputBytes.length, -1), outputBytes);
});

test("alpaca template: header and section markers are template, instruction and input prompt", () => {
  const file = writeJsonl("alpaca.jsonl", { instruction: "Add them.", input: "2 and 3", output: "5" });
  assert.deepEqual(
    maskOf(encodeFile(file, { template: "alpaca", lambda: 0.5, templateWeight: 0.25 }), 0),
    expectedMask([
      text(
        "Below is an instruction that describes a task. Write a response that appropriately completes the " +
          "request.\n\n### Instruction:\n",
        0.25,
      ),
      text("Add them.", 0.5),
      text("\n\n### Input:\n", 0.25),
      text("2 and 3", 0.5),
      text("\n\n### Response:\n", 0.25),
      text("5", 1),
      eos(1),
    ]),
  );
});

test("weights[0] is 0 even when the first token is weighted (plain template, IM: it starts with prompt)", () => {
  const file = writeJsonl("plain.jsonl", { instruction: "Hi", output: "Yo" });
  const mask = maskOf(encodeFile(file, { template: "plain", lambda: 1 }), 0);
  // The plain template: instruction, "\n" (template), output, </s>.
  assert.deepEqual(mask.ids, [0x48, 0x69, 0x0a, 0x59, 0x6f, EOS_ID]);
  assert.deepEqual(mask.weights, [0, 1, 0, 1, 1, 1]);
});

test("weights[0] is 0 even when the first token is template text with template weight 1", () => {
  const file = writeJsonl("alpaca.jsonl", { instruction: "Hi", output: "Yo" });
  const mask = maskOf(encodeFile(file, { lambda: 1, templateWeight: 1 }), 0);
  assert.equal(mask.ids[0], 0x3c); // "<" of <|user|>
  assert.equal(mask.weights[0], 0);
  assert.ok(
    mask.weights.slice(1).every((w) => w === 1),
    "every later token weighs 1",
  );
});

// ---- Truncation -------------------------------------------------------------------------------------------------

// "<|user|>\n" (9) + "Hi" (2) + "\n<|assistant|>\n" (15) = 26 prompt tokens, then "Hello" (5) and </s>: 32 in all.
const SHORT = { instruction: "Hi", output: "Hello" };
const SHORT_REGIONS = tuluExchange("Hi", undefined, "Hello", 0.5, 0.25);

test("truncation end: a context length that cuts the output keeps the first tokens with their weights", () => {
  const file = writeJsonl("short.jsonl", SHORT);
  const full = expectedMask(SHORT_REGIONS);
  assert.equal(full.ids.length, 32);
  const dataset = encodeFile(file, {
    lambda: 0.5,
    templateWeight: 0.25,
    contextLength: 28,
    truncation: "end",
  });
  const example = dataset.examples[0];
  assert.ok(example);
  assert.deepEqual(maskOf(dataset, 0), { ids: full.ids.slice(0, 28), weights: full.weights.slice(0, 28) });
  // The kept tail is "He", both output.
  assert.deepEqual(maskOf(dataset, 0).ids.slice(-2), [0x48, 0x65]);
  assert.deepEqual(maskOf(dataset, 0).weights.slice(-2), [1, 1]);
  assert.equal(example.truncatedTokens, 4);
  assert.equal(dataset.truncated, 1);
  assert.deepEqual(dataset.dropped, []);
});

test("truncation end: one output token left keeps the example; none left drops it and counts it in dropped", () => {
  const longPrompt = { instruction: "A much longer instruction here", output: "Ok" };
  const file = writeJsonl("mixed.jsonl", SHORT, longPrompt, SHORT);
  const dataset = encodeFile(file, {
    lambda: 0.5,
    templateWeight: 0.25,
    contextLength: 27,
    truncation: "end",
  });
  assert.equal(dataset.conversations, 3);
  assert.deepEqual(
    dataset.examples.map((e) => e.index),
    [0, 2],
  );
  assert.deepEqual(dataset.dropped, [{ file, line: 2 }]);
  assert.equal(dataset.truncated, 2);
  const full = expectedMask(SHORT_REGIONS);
  assert.deepEqual(maskOf(dataset, 0), { ids: full.ids.slice(0, 27), weights: full.weights.slice(0, 27) });
  assert.equal(maskOf(dataset, 0).weights.at(-1), 1);
});

test("truncation end: a context length that ends exactly at the prompt drops the example", () => {
  const file = writeJsonl("short.jsonl", SHORT, { instruction: "H", output: "Hello" });
  const dataset = encodeFile(file, { contextLength: 26, truncation: "end" });
  assert.deepEqual(dataset.dropped, [{ file, line: 1 }]);
  assert.deepEqual(
    dataset.examples.map((e) => e.index),
    [1],
  );
});

test("truncation: when every example is dropped, encoding throws a UserError naming --context-length", () => {
  const file = writeJsonl("short.jsonl", SHORT, SHORT);
  assert.throws(
    () => encodeFile(file, { contextLength: 8, truncation: "end" }),
    (error: unknown) => {
      assert.ok(error instanceof UserError, `expected a UserError, got ${String(error)}`);
      assert.ok(error.message.includes("--context-length"), error.message);
      assert.ok(error.message.includes(file), error.message);
      return true;
    },
  );
});

test("truncation prompt: the prompt loses its first tokens; the template and the output stay whole", () => {
  const longPrompt = { instruction: "A much longer instruction here", output: "Ok" };
  const file = writeJsonl("prompt-cut.jsonl", SHORT, longPrompt);
  const dataset = encodeFile(file, { lambda: 0.5, templateWeight: 0.25, contextLength: 31 });
  assert.deepEqual(dataset.dropped, []);
  assert.equal(dataset.truncated, 2);
  // SHORT (32 tokens) loses one of "Hi"'s two tokens; the long one keeps "here", the end of its instruction.
  assert.deepEqual(
    maskOf(dataset, 0),
    expectedMask([
      text("<|user|>\n", 0.25),
      text("i", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("Hello", 1),
      eos(1),
    ]),
  );
  assert.deepEqual(
    maskOf(dataset, 1),
    expectedMask([
      text("<|user|>\n", 0.25),
      text("here", 0.5),
      text("\n<|assistant|>\n", 0.25),
      text("Ok", 1),
      eos(1),
    ]),
  );
  assert.deepEqual(
    dataset.examples.map((e) => [e.truncatedTokens, e.truncatedOutputTokens]),
    [
      [1, 0],
      [26, 0],
    ],
  );
});

test("truncation prompt: when the template and output alone do not fit, the end is cut too and counted", () => {
  const file = writeJsonl("short.jsonl", SHORT);
  const dataset = encodeFile(file, { lambda: 0.5, templateWeight: 0.25, contextLength: 27 });
  // No prompt left (2 tokens), then the end: 9 + 15 template tokens and "Hel" of the output.
  assert.deepEqual(
    maskOf(dataset, 0),
    expectedMask([text("<|user|>\n", 0.25), text("\n<|assistant|>\n", 0.25), text("Hel", 1)]),
  );
  const example = dataset.examples[0];
  assert.deepEqual([example?.truncatedTokens, example?.truncatedOutputTokens], [5, 3]);
});

// ---- IT ⊆ IM ---------------------------------------------------------------------------------------------------

test("IT masks are a subset of IM masks: every weight-1 position under λ=0 is weight-1 under λ=1", () => {
  const file = writeJsonl(
    "mixed-formats.jsonl",
    { instruction: "Add them.", input: "2 and 3", output: "5" },
    { instruction: "Übersetze", input: "東京", output: "Tōkyō 🗼" },
    { instruction: "Name a colour.", output: "Blue." },
  );
  const chat = writeJsonl("chat.jsonl", CHAT_RECORD);
  for (const [data, lastTurnOnly] of [
    [file, false],
    [chat, false],
    [chat, true],
  ] as const) {
    const it = encodeFile(data, { lambda: 0, lastTurnOnly });
    const im = encodeFile(data, { lambda: 1, lastTurnOnly });
    assert.equal(it.examples.length, im.examples.length);
    it.examples.forEach((_, index) => {
      const itMask = maskOf(it, index);
      const imMask = maskOf(im, index);
      assert.deepEqual(itMask.ids, imMask.ids);
      let itOnes = 0;
      let imOnes = 0;
      itMask.weights.forEach((w, i) => {
        if (w === 1) {
          itOnes++;
          assert.equal(imMask.weights[i], 1, `example ${index} position ${i}`);
        }
        if (imMask.weights[i] === 1) imOnes++;
      });
      assert.ok(itOnes > 0, "IT trains on something");
      assert.ok(imOnes > itOnes, "IM trains on strictly more");
    });
  }
});

// ---- CLI --------------------------------------------------------------------------------------------------------

interface JsonMask {
  readonly index: number;
  readonly ids: number[];
  readonly weights: number[];
}

function runMasksJson(args: readonly string[]): JsonMask[] {
  const stdout = execFileSync(process.execPath, [CLI, "masks", ...args, "--json"], {
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
  return stdout
    .split("\n")
    .filter((line) => line.trim() !== "")
    .map((line) => JSON.parse(line) as JsonMask);
}

function jsonMasksOf(dataset: Dataset): JsonMask[] {
  return dataset.examples.map((e) => ({ index: e.index, ids: [...e.ids], weights: [...e.weights] }));
}

test("masks --json prints, per example, exactly the ids and weights encodeConversations gives", () => {
  const file = writeJsonl(
    "cli.jsonl",
    CHAT_RECORD,
    {
      messages: [
        { role: "user", content: "Grüße" },
        { role: "assistant", content: "東京 🗼" },
      ],
    },
    {
      messages: [
        { role: "user", content: "Hi" },
        { role: "assistant", content: "Hello" },
      ],
    },
  );
  const printed = runMasksJson([
    "--data",
    file,
    "--prompt-loss-weight",
    "0.5",
    "--template-loss-weight",
    "0.25",
    "--last-turn-only",
    "--limit",
    "10",
  ]);
  const encoded = encodeFile(file, { lambda: 0.5, templateWeight: 0.25, lastTurnOnly: true });
  assert.equal(printed.length, 3);
  assert.deepEqual(printed, jsonMasksOf(encoded));
  // And the hand-built mask for the last one.
  assert.deepEqual(
    { ids: printed[2]?.ids, weights: printed[2]?.weights },
    expectedMask(tuluExchange("Hi", undefined, "Hello", 0.5, 0.25)),
  );
});

test("masks --json with --loss-mode im, a context length, --truncation end and a limit: dropped examples are skipped", () => {
  const file = writeJsonl(
    "cli-cut.jsonl",
    SHORT,
    { instruction: "A much longer instruction here", output: "Ok" },
    SHORT,
    SHORT,
  );
  const printed = runMasksJson([
    "--data",
    file,
    "--format",
    "alpaca",
    "--loss-mode",
    "im",
    "--context-length",
    "28",
    "--truncation",
    "end",
    "--limit",
    "2",
  ]);
  const encoded = encodeFile(file, { format: "alpaca", lambda: 1, contextLength: 28, truncation: "end" });
  assert.deepEqual(
    printed.map((m) => m.index),
    [0, 2],
  );
  assert.deepEqual(printed, jsonMasksOf(encoded).slice(0, 2));
});
