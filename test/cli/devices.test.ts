// --device through the real CLI: a GPU device never runs on a CPU backend. Where no GPU backend can run
// (no tfjs-node-gpu, no hardware GPU adapter), `--device gpu:0` exits 2 with one error line naming each
// backend tried and why; a backend that cannot run on the device asked for is refused the same way.
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { installed } from "../support/gpu.js";
import { runCli, type CliRun } from "../support/cli.js";
import { gpuCensus } from "../support/gpu.js";
import { tempDir, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("devices");
const data = writeSyntheticData(dir, 8, 1);
let runs = 0;

/** `imtrain train` for one step into a fresh --out; the result and that directory. */
async function train(...args: string[]): Promise<{ result: CliRun; out: string }> {
  const out = join(dir, `run-${++runs}`);
  const result = await runCli(["train", "--data", data, "--steps", "1", "--out", out, ...args]);
  return { result, out };
}

/**
 * Exit 2, and stderr is one line `imtrain: …` mentioning each of `mentions`, with no stack trace; before it
 * at most the run-directory line (no Dawn warnings, no progress).
 */
function assertOneLine({ result, out }: { result: CliRun; out: string }, ...mentions: string[]): void {
  const shown = `exit ${String(result.status)}, stderr:\n${result.stderr}`;
  assert.equal(result.status, 2, shown);
  const lines = result.stderr.split("\n").filter((line) => line.trim() !== "");
  const error = lines.pop() ?? "";
  assert.match(error, /^imtrain: /, shown);
  assert.ok(
    lines.every((line) => line.startsWith("run directory ")),
    shown,
  );
  for (const mention of mentions) assert.ok(error.includes(mention), `"${mention}" expected; ${shown}`);
  assert.ok(!existsSync(out), `${out} should not have been created`);
}

const gpuBackendHere =
  installed("@tensorflow/tfjs-node-gpu") || gpuCensus().adapters.some((adapter) => !adapter.software);

test(
  "train --device gpu:0 - with no usable GPU backend exits 2 with one line naming each backend tried",
  { timeout: 60_000, skip: gpuBackendHere && "a GPU backend can run here" },
  async () => {
    const tried = await train("--device", "gpu:0");
    assertOneLine(tried, "--device gpu:0", "tensorflow-gpu", "webgpu");
    assertOneLine(await train("--backend", "webgpu"), "backend webgpu"); // its default device is gpu:0
  },
);

test(
  "train --device - a backend that cannot run on the device is refused in one line",
  { timeout: 60_000 },
  async () => {
    assertOneLine(await train("--backend", "wasm", "--device", "gpu:0"), "backend wasm", "asks for a GPU");
    assertOneLine(await train("--backend", "webgpu", "--device", "cpu"), "backend webgpu", "--device gpu:K");
    assertOneLine(
      await train("--backend", "cpu", "--device", "gpu:software"),
      "backend cpu",
      "--backend webgpu",
    );
    assertOneLine(await train("--device", "gpu:one"), "--device", "gpu:software");
  },
);

test(
  "launch - a backend its workers cannot run is refused before anything starts",
  { timeout: 60_000 },
  async () => {
    for (const [args, mention] of [
      [["--backend", "webgpu", "--devices", "cpu"], "needs a GPU device"],

      [["--backend", "wasm", "--devices", "gpu"], "asks for a GPU"],
    ] as const) {
      const out = join(dir, `launch-${++runs}`);
      const result = await runCli(["launch", "--workers", "2", "--data", data, "--out", out, ...args]);
      assertOneLine({ result, out }, mention);
    }
  },
);
