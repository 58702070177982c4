import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";

import { DataError, UserError } from "../../shared/errors.js";
import { sharedDataDir } from "../support/shared-data.js";
import type { Conversation } from "../../shared/data/conversation.js";
import { DATA_FORMATS, parseDataText, readDataFile, type DataFormat } from "../../shared/data/formats.js";

const fixtureDir = fs.mkdtempSync(path.join(os.tmpdir(), "imtrain-formats-"));
let fixtureCount = 0;
after(() => fs.rmSync(fixtureDir, { recursive: true, force: true }));

function writeFixture(name: string, text: string): string {
  fixtureCount++;
  const file = path.join(fixtureDir, `${fixtureCount}-${name}`);
  fs.writeFileSync(file, text);
  return file;
}

function jsonLines(...records: unknown[]): string {
  return records.map((record) => JSON.stringify(record)).join("\n") + "\n";
}

/** Turns as plain objects, so deepEqual compares exactly the fields a template would see. */
function turnsOf(conversation: Conversation | undefined): unknown[] {
  assert.ok(conversation, "expected a conversation");
  return conversation.turns.map((turn) => ({ ...turn }));
}

function assertDataErrorAt(run: () => unknown, file: string, line: number, reasonPart: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof DataError, `expected a DataError, got ${String(error)}`);
    assert.ok(error.message.includes(`${file}:${line}`), `"${error.message}" should name ${file}:${line}`);
    assert.ok(error.reason.includes(reasonPart), `"${error.reason}" should mention "${reasonPart}"`);
    return true;
  });
}

test("alpaca records become a user turn with its input and an assistant turn; an empty input is omitted", () => {
  const file = writeFixture(
    "alpaca.jsonl",
    jsonLines(
      {
        instruction: "Translate to German.",
        input: "Grüße aus Köln — 東京",
        output: "Grüße aus Köln — Tokio",
      },
      { instruction: "  Name a colour.  ", input: "", output: "Blue.", category: "ignored" },
      { instruction: "Count to two.", output: "1, 2" },
    ),
  );
  const conversations = readDataFile(file, "alpaca");
  assert.equal(conversations.length, 3);
  assert.deepEqual(turnsOf(conversations[0]), [
    { role: "user", content: "Translate to German.", input: "Grüße aus Köln — 東京" },
    { role: "assistant", content: "Grüße aus Köln — Tokio" },
  ]);
  // Instruction text is kept verbatim, surrounding spaces included.
  assert.deepEqual(turnsOf(conversations[1]), [
    { role: "user", content: "  Name a colour.  " },
    { role: "assistant", content: "Blue." },
  ]);
  assert.equal("input" in (conversations[2]?.turns[0] ?? {}), false);
  assert.deepEqual(
    conversations.map((conversation) => conversation.source),
    [1, 2, 3].map((line) => ({ file, line })),
  );
});

test("dolly records map context to the user turn's input and response to the assistant turn", () => {
  const file = writeFixture(
    "dolly.jsonl",
    jsonLines(
      {
        instruction: "Who wrote it?",
        context: "Faust was written by Goethe.",
        response: "Goethe.",
        category: "qa",
      },
      { instruction: "Say hi.", context: "", response: "Hi!" },
    ),
  );
  const conversations = readDataFile(file, "dolly");
  assert.deepEqual(turnsOf(conversations[0]), [
    { role: "user", content: "Who wrote it?", input: "Faust was written by Goethe." },
    { role: "assistant", content: "Goethe." },
  ]);
  assert.deepEqual(turnsOf(conversations[1]), [
    { role: "user", content: "Say hi." },
    { role: "assistant", content: "Hi!" },
  ]);
});

test("multi-turn chat with a leading system turn keeps every turn in order", () => {
  const messages = [
    { role: "system", content: "You are terse." },
    { role: "user", content: "2+2?" },
    { role: "assistant", content: "4" },
    { role: "user", content: "И ещё раз?" },
    { role: "assistant", content: "4 🙂" },
  ];
  const file = writeFixture("chat.jsonl", jsonLines({ id: "x", messages }));
  const conversations = readDataFile(file, "chat");
  assert.equal(conversations.length, 1);
  assert.deepEqual(turnsOf(conversations[0]), messages);
});

test("prompt-completion records become one user and one assistant turn", () => {
  const file = writeFixture(
    "pc.jsonl",
    jsonLines({ prompt: "Review: great.\nSentiment:\n", completion: "positive" }),
  );
  assert.deepEqual(turnsOf(readDataFile(file, "prompt-completion")[0]), [
    { role: "user", content: "Review: great.\nSentiment:\n" },
    { role: "assistant", content: "positive" },
  ]);
});

test("a self-instruct task with two instances gives two conversations at the task's line", () => {
  const task = {
    id: "seed_task_0",
    instruction: "Classify the sentiment.",
    instances: [
      { input: "I loved it.", output: "positive" },
      { input: "", output: "Give me a sentence first." },
    ],
  };
  const file = writeFixture("self-instruct.jsonl", "\n" + jsonLines(task));
  const conversations = readDataFile(file, "self-instruct");
  assert.equal(conversations.length, 2);
  assert.deepEqual(turnsOf(conversations[0]), [
    { role: "user", content: "Classify the sentiment.", input: "I loved it." },
    { role: "assistant", content: "positive" },
  ]);
  assert.deepEqual(turnsOf(conversations[1]), [
    { role: "user", content: "Classify the sentiment." },
    { role: "assistant", content: "Give me a sentence first." },
  ]);
  assert.deepEqual(
    conversations.map((conversation) => conversation.source.line),
    [2, 2],
  );
});

test("records of a pretty-printed JSON array carry the line each element starts on", () => {
  const records = [
    // Brackets, braces, commas and escaped quotes inside strings must not confuse the scanner.
    { instruction: 'Echo "[{,}]" please', input: "a\\", output: '[{,}] \\"' },
    { instruction: "Two", input: "line one\nline two", output: "ok" },
    { instruction: "Three", output: "done", extra: { nested: [1, { deep: "]" }] } },
  ];
  const file = writeFixture("pretty.json", JSON.stringify(records, null, 4) + "\n");
  const lines = fs.readFileSync(file, "utf8").split("\n");
  const conversations = readDataFile(file, "auto");
  assert.equal(conversations.length, 3);
  const starts = conversations.map((conversation) => conversation.source.line);
  assert.deepEqual(starts, [2, 7, 12]);
  for (const line of starts) assert.equal(lines[line - 1]?.trim(), "{");
  assert.equal(conversations[0]?.turns[0]?.content, 'Echo "[{,}]" please');
  assert.equal(conversations[0]?.turns[1]?.content, '[{,}] \\"');
});

test("a compact JSON array on one line puts every record on line 1", () => {
  const text = JSON.stringify([
    { prompt: "a", completion: "b" },
    { prompt: "c", completion: "d" },
  ]);
  const conversations = parseDataText("inline.json", text, "auto");
  assert.deepEqual(
    conversations.map((conversation) => conversation.source),
    [
      { file: "inline.json", line: 1 },
      { file: "inline.json", line: 1 },
    ],
  );
});

test("auto picks the format from the first record's keys", () => {
  const cases: [DataFormat, Record<string, unknown>][] = [
    [
      "chat",
      {
        messages: [
          { role: "user", content: "q" },
          { role: "assistant", content: "a" },
        ],
      },
    ],
    ["self-instruct", { instruction: "q", instances: [{ input: "", output: "a" }] }],
    ["prompt-completion", { prompt: "q", completion: "a" }],
    ["dolly", { instruction: "q", context: "", response: "a" }],
    ["alpaca", { instruction: "q", input: "", output: "a" }],
  ];
  for (const [format, record] of cases) {
    const text = jsonLines(record);
    assert.deepEqual(
      parseDataText(`${format}.jsonl`, text, "auto"),
      parseDataText(`${format}.jsonl`, text, format),
    );
    assert.deepEqual(turnsOf(parseDataText(`${format}.jsonl`, text, "auto")[0]), [
      { role: "user", content: "q" },
      { role: "assistant", content: "a" },
    ]);
  }
});

test("under auto a record that does not fit the detected format names the missing field and the format", () => {
  const file = writeFixture(
    "mixed.jsonl",
    jsonLines(
      { instruction: "q", output: "a" },
      { instruction: "q", output: "a" },
      { instruction: "q", response: "a" },
    ),
  );
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 3, 'field "output" is missing or not a string');
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 3, "detected as alpaca");
});

test("a first record that fits no format asks for --format", () => {
  const file = writeFixture("unknown.jsonl", "\n\n" + jsonLines({ question_id: 1, turns: ["q"] }));
  assertDataErrorAt(
    () => readDataFile(file, "auto"),
    file,
    3,
    "cannot tell the data format from keys [question_id, turns]",
  );
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 3, `--format one of ${DATA_FORMATS.join(", ")}`);
});

test("a malformed JSON Lines record is reported at its line", () => {
  const good = JSON.stringify({ instruction: "q", output: "a" });
  const file = writeFixture(
    "malformed.jsonl",
    `${good}\n${good}\n{"instruction": "q", "output": \n${good}\n`,
  );
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 3, "malformed JSON");
});

test("a malformed element of a JSON array is reported at the line it starts on", () => {
  const file = writeFixture(
    "malformed.json",
    '[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "a",,\n   "x": 1}\n]\n',
  );
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 3, "malformed JSON");
  const unclosed = writeFixture(
    "unclosed.json",
    '[\n  {"prompt": "a", "completion": "b"},\n  {"prompt": "a"\n',
  );
  assertDataErrorAt(() => readDataFile(unclosed, "auto"), unclosed, 3, "not closed");
  const trailing = writeFixture("trailing.json", '[\n  {"prompt": "a", "completion": "b"},\n]\n');
  assertDataErrorAt(() => readDataFile(trailing, "auto"), trailing, 3, "malformed JSON");
});

test("an explicit format names the field a record lacks", () => {
  const file = writeFixture("missing.jsonl", jsonLines({ prompt: "q", completion: "a" }, { prompt: "q" }));
  assertDataErrorAt(
    () => readDataFile(file, "prompt-completion"),
    file,
    2,
    'field "completion" is missing or not a string',
  );
  const wrongType = writeFixture("wrong-type.jsonl", jsonLines({ instruction: "q", output: 42 }));
  assertDataErrorAt(
    () => readDataFile(wrongType, "alpaca"),
    wrongType,
    1,
    'field "output" is missing or not a string',
  );
});

test("an empty output, completion or instruction is rejected at its line", () => {
  const file = writeFixture(
    "empty.jsonl",
    jsonLines({ instruction: "q", output: "a" }, { instruction: "q", output: " \n" }),
  );
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 2, "empty output");
  const completion = writeFixture("empty-completion.jsonl", jsonLines({ prompt: "q", completion: "" }));
  assertDataErrorAt(() => readDataFile(completion, "auto"), completion, 1, "empty completion");
  const instruction = writeFixture("empty-instruction.jsonl", jsonLines({ instruction: "", output: "a" }));
  assertDataErrorAt(() => readDataFile(instruction, "auto"), instruction, 1, "empty instruction");
});

test("empty outputs are dropped only when the caller asks, and each one is reported", () => {
  const file = writeFixture(
    "skip-empty.json",
    JSON.stringify(
      [
        { instruction: "q1", input: "", output: "a1" },
        { instruction: "q2", input: "", output: "" },
        { instruction: "q3", input: "", output: "a3" },
      ],
      null,
      2,
    ),
  );
  const skipped: DataError[] = [];
  const conversations = readDataFile(file, "auto", { onEmptyOutput: (error) => skipped.push(error) });
  assert.deepEqual(
    conversations.map((conversation) => conversation.turns[0]?.content),
    ["q1", "q3"],
  );
  assert.deepEqual(
    skipped.map((error) => error.message),
    [`${file}:7: empty output`],
  );
});

test("a chat message with an unknown role is rejected naming the role", () => {
  const file = writeFixture(
    "role.jsonl",
    jsonLines({
      messages: [
        { role: "human", content: "q" },
        { role: "gpt", content: "a" },
      ],
    }),
  );
  assertDataErrorAt(() => readDataFile(file, "chat"), file, 1, 'unknown role "human"');
});

test("a chat that ends with a user turn is rejected", () => {
  const good = {
    messages: [
      { role: "user", content: "q" },
      { role: "assistant", content: "a" },
    ],
  };
  const endsWithUser = { messages: [...good.messages, { role: "user", content: "and?" }] };
  const file = writeFixture("ends-with-user.jsonl", jsonLines(good, endsWithUser));
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 2, "ends with a user turn");
});

test("a chat with a system turn after the start or an assistant turn before any user turn is rejected", () => {
  const lateSystem = {
    messages: [
      { role: "user", content: "q" },
      { role: "system", content: "s" },
      { role: "assistant", content: "a" },
    ],
  };
  const file = writeFixture("late-system.jsonl", jsonLines(lateSystem));
  assertDataErrorAt(() => readDataFile(file, "chat"), file, 1, "only the first message");
  const noUser = {
    messages: [
      { role: "system", content: "s" },
      { role: "assistant", content: "a" },
    ],
  };
  const noUserFile = writeFixture("no-user.jsonl", jsonLines(noUser));
  assertDataErrorAt(() => readDataFile(noUserFile, "chat"), noUserFile, 1, "no user turn before it");
});

test("a top-level value that is not an object is rejected", () => {
  const file = writeFixture("scalar.json", '[\n  {"prompt": "q", "completion": "a"},\n  "just text"\n]');
  assertDataErrorAt(() => readDataFile(file, "auto"), file, 3, "expected a JSON object, got a string");
});

test("a file with no records is rejected", () => {
  for (const text of ["", "\n  \n", "[]", "[\n]\n"]) {
    const file = writeFixture("empty-file.json", text);
    assertDataErrorAt(() => readDataFile(file, "auto"), file, 1, "no records");
  }
});

test("a missing data file is a UserError naming the path", () => {
  const file = path.join(fixtureDir, "does-not-exist.jsonl");
  assert.throws(
    () => readDataFile(file, "auto"),
    (error: unknown) => error instanceof UserError && error.message.includes(file),
  );
});

test("every data set under ../shared/data loads", (t) => {
  const dataDir = sharedDataDir(t);
  if (dataDir === undefined) return;
  const files = fs
    .readdirSync(dataDir, { recursive: true, encoding: "utf8" })
    .filter((relative) => /\.jsonl?$/.test(relative))
    // mt_bench holds eval questions without answers, not training conversations.
    .filter((relative) => relative.split(path.sep)[0] !== "mt_bench")
    .sort();
  assert.ok(files.length > 0, `no .json/.jsonl files under ${dataDir}`);
  for (const relative of files) {
    const skipped: DataError[] = [];
    // Some public Alpaca files carry a few empty outputs; they are dropped here and must be the only problem.
    const conversations = readDataFile(path.join(dataDir, relative), "auto", {
      onEmptyOutput: (error) => skipped.push(error),
    });
    assert.ok(conversations.length > 0, `${relative} gave no conversations`);
    for (const error of skipped) assert.equal(error.reason, "empty output");
    t.diagnostic(
      `${relative}: ${conversations.length} conversations, ${skipped.length} empty outputs dropped`,
    );
  }
});
