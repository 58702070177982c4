// A tiny deterministic run keeps a golden loss curve (as torchtitan does): any change to data encoding,
// masks, model, loss, noise or optimizer that moves the numbers shows up here. After an intended change,
// regenerate with IMTRAIN_UPDATE_GOLDEN=1 and review the diff of the asset.
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseTrainFlags } from "../../cli/flags.js";
import { runTrainJob } from "../../coordinator/train-job.js";
import { compileTrainOptions } from "../../shared/options.js";
import { tempDir, writeSyntheticData } from "../support/tiny.js";

// Compiled to dist/test/integration/; the asset lives in the source tree.
const ASSET = resolve(
  dirname(fileURLToPath(import.meta.url)),
  "../../../test/assets/losses/tiny-im-golden.json",
);

interface Curve {
  readonly flags: readonly string[];
  readonly train_loss: readonly number[];
  readonly train_output_loss: readonly number[];
}

test("golden loss - a tiny IM run with accumulation, NEFTune and KL reproduces its recorded curve", async () => {
  const dir = tempDir("golden");
  const data = writeSyntheticData(dir, 24, 5);
  const flags = [
    "--steps",
    "8",
    "--batch-size",
    "4",
    "--micro-batch-size",
    "2",
    "--prompt-loss-weight",
    "0.5",
    "--loss-reduction",
    "example",
    "--neftune-alpha",
    "5",
    "--kl-weight",
    "0.1",
    "--lr",
    "3e-3",
    "--warmup-steps",
    "2",
    "--seed",
    "7",
    "--eval-fraction",
    "0",
    "--backend",
    "wasm",
  ];
  const out = join(dir, "run");
  await runTrainJob(compileTrainOptions(parseTrainFlags(["--data", data, "--out", out, ...flags])), () => {});
  const steps = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line) as { type: string; train_loss: number; train_output_loss: number })
    .filter((r) => r.type === "step");
  const curve: Curve = {
    flags,
    train_loss: steps.map((s) => s.train_loss),
    train_output_loss: steps.map((s) => s.train_output_loss),
  };
  if (process.env["IMTRAIN_UPDATE_GOLDEN"] === "1") {
    writeFileSync(ASSET, JSON.stringify(curve, null, 2) + "\n");
    return;
  }
  const golden = JSON.parse(readFileSync(ASSET, "utf8")) as Curve;
  assert.deepEqual(curve.flags, golden.flags, "the run's flags changed: regenerate the golden curve");
  assert.equal(curve.train_loss.length, golden.train_loss.length);
  // Float32 on wasm is deterministic on one machine; across CPUs allow summation-order noise only.
  for (const key of ["train_loss", "train_output_loss"] as const) {
    curve[key].forEach((value, i) => {
      const want = golden[key][i] ?? NaN;
      assert.ok(Math.abs(value - want) <= 1e-4 * Math.abs(want), `${key}[${i}] = ${value}, golden ${want}`);
    });
  }
  // And the run learned: the loss fell.
  assert.ok((curve.train_loss.at(-1) ?? 0) < (curve.train_loss[0] ?? 0));
});
