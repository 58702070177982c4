// Bad input through the real CLI: a user error exits with code 2 and prints one line, `imtrain: <message>`,
// that names the place to fix (file:line, flag or path) and carries no stack trace; a train that fails on its
// data writes nothing to --out.
import { after, test } from "node:test";
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { runCliSync, type CliRun } from "../support/cli.js";

const fixtureDir = fs.mkdtempSync(path.join(os.tmpdir(), "imtrain-cli-errors-"));
let fixtureCount = 0;
after(() => fs.rmSync(fixtureDir, { recursive: true, force: true }));

function fixturePath(name: string): string {
  fixtureCount++;
  return path.join(fixtureDir, `${fixtureCount}-${name}`);
}

function writeFixture(name: string, text: string): string {
  const file = fixturePath(name);
  fs.writeFileSync(file, text);
  return file;
}

function jsonLines(...records: unknown[]): string {
  return records.map((record) => JSON.stringify(record)).join("\n") + "\n";
}

const GOOD = { instruction: "Say hi.", input: "", output: "Hi" };

type CliResult = CliRun;

function runCli(args: readonly string[]): CliResult {
  return runCliSync(args, fixtureDir);
}

function masks(...args: string[]): CliResult {
  return runCli(["masks", ...args, "--json"]);
}

/** Runs a one-step train into a fresh --out directory; returns the result and that directory. */
function train(...args: string[]): { result: CliResult; out: string } {
  const out = fixturePath("run");
  return { result: runCli(["train", "--steps", "1", "--model", "tiny", "--out", out, ...args]), out };
}

/**
 * Exit code 2 and exactly one stderr line `imtrain: …`, the last, that mentions each of `mentions`, with no
 * stack frame.
 */
function assertUserError(result: CliResult, ...mentions: string[]): void {
  const shown = `exit ${String(result.status)}, stderr:\n${result.stderr}`;
  assert.equal(result.status, 2, shown);
  assert.ok(!result.stderr.includes("    at "), `no stack trace expected; ${shown}`);
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  const errorLine = lines.find((line) => line.startsWith("imtrain: "));
  assert.ok(errorLine !== undefined, `expected a line "imtrain: …"; ${shown}`);
  for (const mention of mentions) {
    assert.ok(errorLine.includes(mention), `expected the error line to mention "${mention}"; ${shown}`);
  }
  // Progress lines (backend, model) may come first; the error is the one and last `imtrain:` line.
  assert.equal(lines.filter((line) => line.startsWith("imtrain: ")).length, 1, shown);
  assert.equal(lines.at(-1), errorLine, `expected the error to be the last line; ${shown}`);
}

function assertNothingWritten(out: string): void {
  assert.ok(!fs.existsSync(out), `${out} should not have been created`);
}

// ---- Data errors -------------------------------------------------------------------------------------------------

function malformedOnLine3(): string {
  return writeFixture("malformed.jsonl", jsonLines(GOOD, GOOD) + '{"instruction": "x", "output": \n');
}

function missingOutputOnLine2(): string {
  return writeFixture("missing.jsonl", jsonLines(GOOD, { instruction: "Say bye.", input: "" }));
}

function emptyOutputOnLine2(): string {
  return writeFixture("empty.jsonl", jsonLines(GOOD, { instruction: "Say bye.", input: "", output: "  " }));
}

function outputNeverFits(): string {
  return writeFixture(
    "long.jsonl",
    jsonLines(
      { instruction: "A long instruction that fills the context.", output: "Ok" },
      { instruction: "Another long instruction.", output: "Fine" },
    ),
  );
}

test("masks - malformed JSON on line 3 of a JSONL file names file:3", () => {
  const file = malformedOnLine3();
  assertUserError(masks("--data", file), `${file}:3`, "malformed JSON");
});

test("train - malformed JSON on line 3 names file:3 and writes nothing to --out", () => {
  const file = malformedOnLine3();
  const { result, out } = train("--data", file);
  assertNothingWritten(out);
  assertUserError(result, `${file}:3`, "malformed JSON");
});

test("masks - a record missing its output field names file:2 and the field", () => {
  const file = missingOutputOnLine2();
  assertUserError(masks("--data", file), `${file}:2`, '"output"');
});

test("train - a record missing its output field names file:2 and writes nothing to --out", () => {
  const file = missingOutputOnLine2();
  const { result, out } = train("--data", file);
  assertNothingWritten(out);
  assertUserError(result, `${file}:2`, '"output"');
});

test("masks - an empty output names file:2 and suggests --drop-empty-outputs", () => {
  const file = emptyOutputOnLine2();
  assertUserError(masks("--data", file), `${file}:2`, "empty output", "--drop-empty-outputs");
});

test("masks - with --drop-empty-outputs the file with an empty output succeeds without it", () => {
  const file = emptyOutputOnLine2();
  const result = masks("--data", file, "--drop-empty-outputs");
  assert.equal(result.status, 0, result.stderr);
  const lines = result.stdout.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 1);
  assert.equal((JSON.parse(lines[0] ?? "") as { index: number }).index, 0);
});

test("masks - keys that match no format name file:1 and ask for --format", () => {
  const file = writeFixture("unknown.jsonl", jsonLines({ question: "Why?", answer: "Because." }));
  assertUserError(masks("--data", file), `${file}:1`, "--format", "question");
});

test("masks - an explicit unknown --format foo is refused with exit 2", () => {
  const file = writeFixture("good.jsonl", jsonLines(GOOD));
  assertUserError(masks("--data", file, "--format", "foo"), "format", "foo");
});

test("masks - a nonexistent data file names the path", () => {
  const file = path.join(fixtureDir, "does-not-exist.jsonl");
  assertUserError(masks("--data", file), file);
});

test("train - a nonexistent data file names the path and writes nothing to --out", () => {
  const file = path.join(fixtureDir, "does-not-exist.jsonl");
  const { result, out } = train("--data", file);
  assertNothingWritten(out);
  assertUserError(result, file);
});

test("masks - --context-length 4 with no output ever fitting: every example dropped, names --context-length", () => {
  const file = outputNeverFits();
  assertUserError(masks("--data", file, "--context-length", "4"), file, "--context-length");
});

test("train - --context-length 4 with no output ever fitting names --context-length and writes nothing", () => {
  const file = outputNeverFits();
  const { result, out } = train("--data", file, "--context-length", "4");
  assertNothingWritten(out);
  assertUserError(result, file, "--context-length");
});

// ---- Flag errors -------------------------------------------------------------------------------------------------

test("masks - an unknown flag --nonsense is refused with exit 2, naming it", () => {
  const file = writeFixture("good.jsonl", jsonLines(GOOD));
  assertUserError(masks("--data", file, "--nonsense"), "nonsense");
});

test("train - --batch-size 0 names --batch-size and writes nothing to --out", () => {
  const file = writeFixture("good.jsonl", jsonLines(GOOD));
  const { result, out } = train("--data", file, "--batch-size", "0");
  assertNothingWritten(out);
  assertUserError(result, "--batch-size");
});

test("masks - --loss-mode im with --prompt-loss-weight 0 is a contradiction naming the flag", () => {
  const file = writeFixture("good.jsonl", jsonLines(GOOD));
  assertUserError(
    masks("--data", file, "--loss-mode", "im", "--prompt-loss-weight", "0"),
    "--prompt-loss-weight",
    "--loss-mode",
  );
});

test("masks - --tokenizer /nonexistent names the path", () => {
  const file = writeFixture("good.jsonl", jsonLines(GOOD));
  assertUserError(masks("--data", file, "--tokenizer", "/nonexistent"), "--tokenizer", "/nonexistent");
});

test("coordinator, launch, worker - a --job that is not one NATS subject token is refused by name", () => {
  for (const job of ["a.b", "jobs.>", "my job", "*", ""]) {
    assertUserError(runCli(["coordinator", "--workers", "1", "--data", "x.jsonl", "--job", job]), "--job");
    assertUserError(runCli(["launch", "--workers", "1", "--data", "x.jsonl", "--job", job]), "--job");
    assertUserError(runCli(["worker", "--job", job]), "--job", "not a job name");
  }
});
