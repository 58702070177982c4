// `imtrain analyze` on the real T0 sample (instruction/output ratio ≈ 10, the paper's most favourable case
// for IM): at the tiny preset's 256 tokens the default truncation keeps every example whose output fits,
// where cutting the end dropped most of them.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../support/cli.js";
import { sharedDataDir } from "../support/shared-data.js";

test(
  "analyze - the T0 sample at 256 tokens: no example with an output of ≤ 200 tokens is dropped; --truncation end drops",
  { timeout: 120_000 },
  async (t) => {
    const dataDir = sharedDataDir(t);
    if (dataDir === undefined) return;
    const file = join(dataDir, "t0_sample/t0_train_sample_5per_template.jsonl");
    const analyze = async (...args: string[]) => {
      const result = await runCli(["analyze", "--data", file, "--model", "tiny", "--json", ...args]);
      assert.equal(result.status, 0, result.stderr);
      return JSON.parse(result.stdout) as Record<string, number>;
    };
    // Byte tokenizer: an output's tokens are its UTF-8 bytes (and </s>).
    const records = readFileSync(file, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { completion: string });
    const shortOutputs = records.filter((r) => Buffer.byteLength(r.completion) <= 200).length;
    assert.ok(shortOutputs > records.length / 2, "most T0 outputs are short");
    const kept = await analyze();
    assert.equal(kept["context_length"], 256);
    assert.equal(kept["conversations"], records.length);
    // Nothing dropped at all, so none of the short-output examples either.
    assert.equal(kept["dropped"], 0, "every example keeps its output");
    assert.ok((kept["truncated_prompt_tokens"] ?? 0) > 0, "long prompts were cut instead");
    const endCut = await analyze("--truncation", "end");
    assert.ok(
      (endCut["dropped"] ?? 0) > records.length / 2,
      `cutting the end drops most: ${endCut["dropped"]}`,
    );
  },
);
