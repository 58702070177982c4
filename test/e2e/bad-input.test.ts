// Bad input through the real CLI, as one table: flags, config files, data files, tokenizers that do not fit
// the model, and run directories. Every case must exit 2; stderr's last non-empty line is its only
// `imtrain: …` line and names the place to fix (the flag, the file or file:line); no stack trace; and
// nothing is written: the case's own working directory (where a run without --out would make runs/) and the
// shared fixtures, a finished run among them, stay byte for byte and mtime for mtime as they were.
// After the table, the run-directory rules that do write: fresh default directories, resuming a finished
// run (a no-op), --overwrite, and config files read relative to themselves.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { cpSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { runCli, type CliRun } from "../support/cli.js";
import { tempDir, writeSyntheticData } from "../support/tiny.js";

const root = tempDir("bad-input");
after(() => rmSync(root, { recursive: true, force: true }));

// ---- Shared fixtures: made once, and checked unchanged at the end -------------------------------------------

const fixtures = join(root, "fixtures");
const DATA = join(fixtures, "data.jsonl");
/** A finished 2-step run of the tiny model with the byte tokenizer. */
const RUN = join(fixtures, "run");
const CHECKPOINT = join(RUN, "checkpoint");
/** The same checkpoint with no tokenizer recorded, like a Hugging Face GPT-2 one. */
const UNTAGGED = join(fixtures, "untagged-checkpoint");
/** A demo directory whose it/ holds a run. */
const DEMO = join(fixtures, "demo");
const EMPTY_DIR = join(fixtures, "empty-dir");
const UTF16 = join(fixtures, "utf16.jsonl");
const BINARY = join(fixtures, "binary.jsonl");
const LATIN1 = join(fixtures, "latin1.jsonl");
const MALFORMED = join(fixtures, "malformed.jsonl");
const EMPTY = join(fixtures, "empty.jsonl");
const MISSING = join(fixtures, "missing.jsonl");

const record = (instruction: string, output: string) => JSON.stringify({ instruction, input: "", output });
const TINY = ["--model", "tiny", "--backend", "wasm", "--batch-size", "2", "--eval-examples", "2"];
const TRAIN = ["train", "--data", DATA, ...TINY, "--steps", "1"];

function writeFixtures(): void {
  mkdirSync(EMPTY_DIR, { recursive: true });
  writeSyntheticData(fixtures, 20, 1, "data.jsonl");
  const text = `${record("Say hi.", "Hi")}\n${record("Say bye.", "Bye")}\n`;
  writeFileSync(UTF16, Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]));
  writeFileSync(BINARY, Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0, 0, 0, 0x0a, 0x1b, 0xff]));
  writeFileSync(
    LATIN1,
    Buffer.concat([Buffer.from(`${record("Say hi.", "Hi")}\n{"instruction": "caf`), Buffer.from([0xe9])]),
  );
  writeFileSync(MALFORMED, `${record("a", "b")}\n${record("c", "d")}\n{"instruction": "x", "output": \n`);
  writeFileSync(EMPTY, "");
}

async function trainFixtureRun(): Promise<void> {
  const result = await runCli(["train", "--data", DATA, ...TINY, "--steps", "2", "--out", RUN]);
  assert.equal(result.status, 0, result.stderr);
  cpSync(CHECKPOINT, UNTAGGED, { recursive: true });
  const configFile = join(UNTAGGED, "config.json");
  const config = JSON.parse(readFileSync(configFile, "utf8")) as { imtrain: Record<string, unknown> };
  delete config.imtrain["tokenizer"];
  writeFileSync(configFile, JSON.stringify(config));
  mkdirSync(join(DEMO, "it"), { recursive: true });
  cpSync(join(RUN, "summary.json"), join(DEMO, "it", "summary.json"));
}

/** Every file and directory under `dir`: size, mtime and content hash, so a rewrite shows even if same bytes. */
function snapshot(dir: string): Record<string, string> {
  const entries: Record<string, string> = {};
  const walk = (path: string, name: string) => {
    const info = statSync(path);
    if (info.isDirectory()) {
      entries[name + "/"] = "dir";
      for (const child of readdirSync(path).sort()) walk(join(path, child), `${name}/${child}`);
    } else {
      const hash = createHash("sha256").update(readFileSync(path)).digest("hex");
      entries[name] = `${info.size} ${info.mtimeMs} ${hash}`;
    }
  };
  walk(dir, ".");
  return entries;
}

let fixturesBefore: Record<string, string> = {};
before(
  async () => {
    writeFixtures();
    await trainFixtureRun();
    fixturesBefore = snapshot(fixtures);
  },
  { timeout: 60_000 },
);

// ---- The table -------------------------------------------------------------------------------------------

interface BadInput {
  readonly name: string;
  readonly args: readonly string[];
  /** What the error line must name: the flag, the file or file:line. */
  readonly names: readonly string[];
  /** Files written into the case's working directory first (relative path → content). */
  readonly files?: Readonly<Record<string, string | Buffer>>;
}

const CASES: readonly BadInput[] = [
  // Flags
  { name: "--lr -1e-3 reaches the lr check", args: [...TRAIN, "--lr", "-1e-3"], names: ["--lr", "-0.001"] },
  { name: "--lr 0", args: [...TRAIN, "--lr", "0"], names: ["--lr"] },
  { name: "--steps abc", args: [...TRAIN, "--steps", "abc"], names: ['--steps: "abc" is not a number'] },
  { name: "--steps with no value", args: [...TRAIN, "--steps"], names: ["--steps: needs a number"] },
  { name: "--steps 1.5", args: [...TRAIN, "--steps", "1.5"], names: ["--steps", "integer"] },
  {
    name: "--micro-batch-size above --batch-size",
    args: [...TRAIN, "--batch-size", "4", "--micro-batch-size", "8"],
    names: ["--micro-batch-size", "--batch-size 4"],
  },
  { name: "--batch-size 0", args: [...TRAIN, "--batch-size", "0"], names: ["--batch-size"] },
  { name: "--steps and --epochs", args: [...TRAIN, "--epochs", "1"], names: ["--steps", "--epochs"] },
  {
    name: "a repeated flag: the last value wins, and is the one checked",
    args: [...TRAIN, "--lr", "0.001", "--lr", "abc"],
    names: ['--lr: "abc" is not a number'],
  },
  {
    name: "--prompt-loss-weight 1.5",
    args: [...TRAIN, "--prompt-loss-weight", "1.5"],
    names: ["--prompt-loss-weight"],
  },
  {
    name: "--loss-mode im contradicts --prompt-loss-weight 0",
    args: ["masks", "--data", DATA, "--loss-mode", "im", "--prompt-loss-weight", "0"],
    names: ["--prompt-loss-weight", "--loss-mode"],
  },
  { name: "--seed -1", args: [...TRAIN, "--seed", "-1"], names: ["--seed"] },
  { name: "--format foo", args: ["masks", "--data", DATA, "--format", "foo"], names: ['--format: "foo"'] },
  { name: "--json=yes", args: ["masks", "--data", DATA, "--json=yes"], names: ["--json", '"yes"'] },
  { name: "an unknown flag", args: [...TRAIN, "--nonsense"], names: ["--nonsense", "not a flag of train"] },
  { name: "--context-length 1", args: [...TRAIN, "--context-length", "1"], names: ["--context-length"] },
  {
    name: "--tokenizer with no value",
    args: ["masks", "--data", DATA, "--tokenizer"],
    names: ["--tokenizer"],
  },
  {
    name: "generate --temperature -1",
    args: ["generate", "--model", CHECKPOINT, "--prompt", "hi", "--temperature", "-1"],
    names: ["--temperature"],
  },
  {
    name: "generate --top-k 1.5",
    args: ["generate", "--model", CHECKPOINT, "--prompt", "hi", "--top-k", "1.5"],
    names: ["--top-k"],
  },
  {
    name: "coordinator --workers 0",
    args: ["coordinator", "--data", DATA, "--workers", "0", "--out", "out"],
    names: ["--workers"],
  },
  {
    name: "coordinator --heartbeat-timeout-ms under 3 heartbeats",
    args: ["coordinator", "--data", DATA, "--workers", "1", "--heartbeat-timeout-ms", "100", "--out", "out"],
    names: ["--heartbeat-timeout-ms", "--heartbeat-ms"],
  },
  {
    name: "launch --metrics-port runs past 65535",
    args: ["launch", "--data", DATA, "--workers", "2", "--metrics-port", "65535", "--out", "out"],
    names: ["--metrics-port"],
  },

  // Config files
  {
    name: "--config of a missing file",
    args: ["masks", "--config", "missing.yaml"],
    names: ["--config missing.yaml", "no such file"],
  },
  {
    name: "--config with a YAML syntax error on line 3",
    args: ["masks", "--config", "bad.yaml"],
    names: ["bad.yaml:3"],
    files: { "bad.yaml": `data: ${DATA}\nlimit: 1\ntemplate: tulu: plain\n` },
  },
  {
    name: "--config with a JSON syntax error on line 2",
    args: ["masks", "--config", "bad.json"],
    names: ["bad.json:2"],
    files: { "bad.json": `{"limit": 1,\n "data" "x"}\n` },
  },
  {
    name: "--config that is a list, not a mapping",
    args: ["masks", "--config", "list.yaml"],
    names: ["list.yaml:1"],
    files: { "list.yaml": "- data\n- limit\n" },
  },
  {
    name: "--config with a key that is no flag",
    args: ["masks", "--config", "unknown.yaml"],
    names: ["unknown.yaml:2", "bogus-key"],
    files: { "unknown.yaml": `data: ${DATA}\nbogus-key: 3\n` },
  },
  {
    name: "--config with steps: abc",
    args: ["train", "--data", DATA, ...TINY, "--config", "steps.yaml"],
    names: ["steps.yaml:1", 'steps: "abc" is not a number'],
    files: { "steps.yaml": "steps: abc\n" },
  },
  {
    name: "--config with a boolean that is neither yes nor no",
    args: ["masks", "--config", "bool.yaml"],
    names: ["bool.yaml:2", "drop-empty-outputs"],
    files: { "bool.yaml": `data: ${DATA}\ndrop-empty-outputs: maybe\n` },
  },
  {
    name: "--config with a key given twice",
    args: ["masks", "--config", "dup.yaml"],
    names: ["dup.yaml:2"],
    files: { "dup.yaml": `limit: 1\nlimit: 2\ndata: ${DATA}\n` },
  },
  {
    name: "--config in UTF-16",
    args: ["masks", "--config", "utf16.yaml"],
    names: ["utf16.yaml:1", "UTF-16"],
    files: {
      "utf16.yaml": Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(`data: ${DATA}\n`, "utf16le")]),
    },
  },
  {
    name: "--config's data: is relative to the config file",
    args: ["masks", "--config", "sub/run.yaml"],
    names: ["sub/missing.jsonl", "no such file"],
    files: { "sub/run.yaml": "data: missing.jsonl\n" },
  },
  {
    name: "--config with lr: 0",
    args: ["train", "--data", DATA, ...TINY, "--config", "lr.yaml"],
    names: ["--lr"],
    files: { "lr.yaml": "lr: 0\n" },
  },
  {
    name: "--config with a key and no value",
    args: ["masks", "--config", "novalue.yaml"],
    names: ["novalue.yaml:1", "data"],
    files: { "novalue.yaml": "data:\n" },
  },
  {
    name: "--config with a list where one value belongs",
    args: ["train", "--data", DATA, ...TINY, "--config", "listvalue.yaml"],
    names: ["listvalue.yaml:1", "steps", "one value"],
    files: { "listvalue.yaml": "steps: [1, 2]\n" },
  },
  {
    name: "--config with a template that is not one",
    args: ["masks", "--data", DATA, "--config", "template.yaml"],
    names: ["template.yaml:1", "template", '"foo"'],
    files: { "template.yaml": "template: foo\n" },
  },

  // Data files
  { name: "a UTF-16 data file", args: ["masks", "--data", UTF16], names: [`${UTF16}:1`, "UTF-16"] },
  {
    name: "a binary data file",
    args: [...TRAIN.slice(0, 1), "--data", BINARY, ...TINY],
    names: [`${BINARY}:1`, "not UTF-8"],
  },
  {
    name: "a Latin-1 byte on line 2",
    args: ["masks", "--data", LATIN1],
    names: [`${LATIN1}:2`, "0xe9", "not UTF-8"],
  },
  {
    name: "a missing data file",
    args: [...TRAIN.slice(0, 1), "--data", MISSING, ...TINY],
    names: [MISSING, "no such file"],
  },
  {
    name: "a directory as the data file",
    args: ["masks", "--data", EMPTY_DIR],
    names: [EMPTY_DIR, "is a directory"],
  },
  {
    name: "malformed JSON on line 3",
    args: ["train", "--data", MALFORMED, ...TINY],
    names: [`${MALFORMED}:3`],
  },
  { name: "an empty data file", args: ["analyze", "--data", EMPTY], names: [`${EMPTY}:1`, "no records"] },
  {
    name: "generate --data of a binary file",
    args: ["generate", "--model", CHECKPOINT, "--data", BINARY],
    names: [`${BINARY}:1`],
  },

  // Tokenizers and models
  {
    name: "--tokenizer of a missing tokenizer.json",
    args: ["masks", "--data", DATA, "--tokenizer", "./missing/tokenizer.json"],
    names: ["--tokenizer", "./missing/tokenizer.json", "no such file"],
  },
  {
    name: "--tokenizer gtp2 (a typo)",
    args: ["masks", "--data", DATA, "--tokenizer", "gtp2"],
    names: ["--tokenizer", "gtp2"],
  },
  {
    name: "score with gpt2 on a byte-tokenizer checkpoint",
    args: ["score", "--model", CHECKPOINT, "--data", DATA, "--tokenizer", "gpt2"],
    names: [CHECKPOINT, "--tokenizer byte"],
  },
  {
    name: "generate with gpt2 on a byte-tokenizer checkpoint",
    args: ["generate", "--model", RUN, "--prompt", "hi", "--tokenizer", "gpt2"],
    names: [CHECKPOINT, "--tokenizer byte"],
  },
  {
    name: "score with a tokenizer larger than the checkpoint's vocabulary",
    args: ["score", "--model", UNTAGGED, "--data", DATA, "--tokenizer", "gpt2"],
    names: [UNTAGGED, "vocab_size 257"],
  },
  {
    name: "train from a checkpoint with a tokenizer larger than its vocabulary",
    args: ["train", "--data", DATA, ...TINY, "--model", CHECKPOINT, "--tokenizer", "gpt2"],
    names: [CHECKPOINT, "vocab_size 257"],
  },
  {
    name: "score --model of no checkpoint",
    args: ["score", "--model", "nowhere", "--data", DATA],
    names: ["--model", "nowhere"],
  },

  // Run directories
  { name: "--out of a finished run", args: [...TRAIN, "--out", RUN], names: ["--out", RUN, "--overwrite"] },
  { name: "--out that is a file", args: [...TRAIN, "--out", DATA], names: ["--out", DATA, "is a file"] },
  {
    name: "--out under a file",
    args: [...TRAIN, "--out", join(DATA, "run")],
    names: ["--out", DATA, "which is a file"],
  },
  {
    name: "--resume with an --out elsewhere",
    args: [...TRAIN, "--resume", RUN, "--out", "elsewhere"],
    names: ["--out", "elsewhere", RUN],
  },
  { name: "--resume of nothing", args: [...TRAIN, "--resume", "nowhere"], names: ["--resume", "nowhere"] },
  { name: "--resume of a file", args: [...TRAIN, "--resume", DATA], names: ["--resume", DATA] },
  {
    name: "--resume of a directory with no run",
    args: [...TRAIN, "--resume", EMPTY_DIR],
    names: ["--resume", EMPTY_DIR],
  },
  {
    name: "--resume with fewer --steps than done",
    args: [...TRAIN, "--resume", RUN],
    names: ["--steps", "2 steps"],
  },
  {
    name: "launch --out of a finished run",
    args: ["launch", "--data", DATA, ...TINY, "--workers", "2", "--nats", "embedded", "--out", RUN],
    names: ["--out", RUN],
  },
  {
    name: "coordinator --out of a finished run",
    args: ["coordinator", "--data", DATA, ...TINY, "--workers", "1", "--out", RUN],
    names: ["--out", RUN],
  },
  {
    name: "demo --out holding a run",
    args: ["demo", "--out", DEMO, "--steps", "1"],
    names: ["--out", join(DEMO, "it")],
  },
  {
    name: "report --out under a file",
    args: ["report", RUN, "--out", join(DATA, "report.html")],
    names: ["--out", DATA],
  },
  {
    name: "synth --out under a file",
    args: ["synth", "--out", join(DATA, "x.jsonl")],
    names: ["--out", DATA],
  },
];

const STACK_FRAME = /^\s+at /m;

function nonEmptyLines(text: string): string[] {
  return text.split("\n").filter((line) => line.trim() !== "");
}

function assertOneLineNaming(result: CliRun, names: readonly string[]): void {
  const shown = `exit ${String(result.status)}, stderr:\n${result.stderr}`;
  assert.equal(result.status, 2, shown);
  assert.doesNotMatch(result.stderr, STACK_FRAME, `no stack trace expected; ${shown}`);
  const lines = nonEmptyLines(result.stderr);
  const last = lines.at(-1) ?? "";
  assert.ok(last.startsWith("imtrain: "), `the last line should start with "imtrain: "; ${shown}`);
  assert.equal(lines.filter((line) => line.startsWith("imtrain: ")).length, 1, shown);
  for (const name of names) assert.ok(last.includes(name), `the error should name "${name}"; ${shown}`);
}

let caseCount = 0;
/** A working directory of its own, with the case's files in it. */
function caseDir(files: Readonly<Record<string, string | Buffer>> = {}): string {
  const dir = join(root, "cases", String(++caseCount));
  mkdirSync(dir, { recursive: true });
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, name)), { recursive: true });
    writeFileSync(join(dir, name), content);
  }
  return dir;
}

test(
  `bad input - ${CASES.length} cases: exit 2, one last line naming the place, no stack trace, nothing written`,
  { concurrency: 4, timeout: 180_000 },
  async (t) => {
    assert.ok(CASES.length >= 40);
    await Promise.all(
      CASES.map((badInput) =>
        t.test(badInput.name, { timeout: 60_000 }, async (c) => {
          const cwd = caseDir(badInput.files);
          const before = snapshot(cwd);
          const result = await runCli(badInput.args, process.env, cwd);
          assertOneLineNaming(result, badInput.names);
          c.diagnostic(nonEmptyLines(result.stderr).at(-1) ?? ""); // the line a user sees, in the test report
          assert.deepEqual(snapshot(cwd), before, "the working directory should be as it was");
        }),
      ),
    );
  },
);

// ---- Run directories that are written -------------------------------------------------------------------------

test(
  "run directory - without --out, two runs started together each get a new runs/<UTC time>-train, named first",
  { timeout: 60_000 },
  async () => {
    const cwd = caseDir();
    const runs = await Promise.all(
      [0, 1].map(() => runCli(["train", "--data", DATA, ...TINY, "--steps", "1"], process.env, cwd)),
    );
    const dirs = runs.map((result) => {
      assert.equal(result.status, 0, result.stderr);
      const match = /^run directory (runs\/\d{8}T\d{6}Z-train(?:-\d+)?) \(new\)$/.exec(
        nonEmptyLines(result.stderr)[0] ?? "",
      );
      assert.ok(match?.[1], `the first line should name the run directory:\n${result.stderr}`);
      const summary = JSON.parse(readFileSync(join(cwd, match[1], "summary.json"), "utf8")) as {
        out_dir: string;
      };
      assert.equal(summary.out_dir, match[1]);
      return match[1];
    });
    assert.notEqual(dirs[0], dirs[1]);
    assert.deepEqual(
      readdirSync(join(cwd, "runs")).sort(),
      dirs.map((dir) => dir.slice("runs/".length)).sort(),
    );
  },
);

test(
  "run directory - resuming a run that holds all its steps says so in one line, exits 0 and rewrites nothing",
  { timeout: 60_000 },
  async () => {
    const summary = readFileSync(join(RUN, "summary.json"));
    const result = await runCli(["train", "--data", DATA, ...TINY, "--steps", "2", "--resume", RUN]);
    assert.equal(result.status, 0, result.stderr);
    const lines = nonEmptyLines(result.stderr);
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0] ?? "", /already holds all 2 steps/);
    assert.equal(result.stdout, "");
    assert.deepEqual(readFileSync(join(RUN, "summary.json")), summary);
  },
);

test(
  "run directory - --overwrite replaces the run in --out: the old checkpoint and metrics go",
  { timeout: 60_000 },
  async () => {
    const out = join(caseDir(), "run");
    cpSync(RUN, out, { recursive: true });
    const result = await runCli([
      "train",
      "--data",
      DATA,
      ...TINY,
      "--steps",
      "1",
      "--out",
      out,
      "--overwrite",
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(nonEmptyLines(result.stderr)[0] ?? "", /\(--overwrite: replacing the run in it\)/);
    const summary = JSON.parse(readFileSync(join(out, "summary.json"), "utf8")) as {
      completed_steps: number;
    };
    assert.equal(summary.completed_steps, 1);
    const config = JSON.parse(readFileSync(join(out, "checkpoint", "config.json"), "utf8")) as {
      imtrain: { trainer: { step: number } };
    };
    assert.equal(config.imtrain.trainer.step, 1);
    const steps = nonEmptyLines(readFileSync(join(out, "metrics.jsonl"), "utf8")).filter((line) =>
      line.includes('"type":"step"'),
    );
    assert.equal(steps.length, 1);
  },
);

test(
  "config file - paths are relative to it, yes is true, and a repeated flag takes its last value",
  { timeout: 60_000 },
  async () => {
    const withEmptyOutput = `${record("Say hi.", "Hi")}\n${record("Say bye.", "")}\n${record("Say yes.", "Yes")}\n`;
    const cwd = caseDir({
      "configs/data.jsonl": withEmptyOutput,
      "configs/run.yaml": "data: data.jsonl\ndrop-empty-outputs: yes\n",
    });
    const result = await runCli(
      ["masks", "--config", "configs/run.yaml", "--json", "--limit", "5", "--limit", "1"],
      process.env,
      cwd,
    );
    assert.equal(result.status, 0, result.stderr);
    assert.equal(nonEmptyLines(result.stdout).length, 1, result.stdout);
    assert.match(
      result.stderr,
      /data configs\/data\.jsonl: 2 examples \(1 records with empty output skipped\)/,
    );
  },
);

test("the shared fixtures, a finished run among them, are unchanged", () => {
  assert.deepEqual(snapshot(fixtures), fixturesBefore);
});
