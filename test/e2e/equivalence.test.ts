// The acceptance test of data parallelism: with the same flags and seed, `train`, `launch --workers 2` and
// `launch --workers 3` (and 1, once) (real nats-server, real processes) give the same per-step losses and final
// parameters, for every loss reduction; the ws data plane matches too.
import assert from "node:assert/strict";
import { join } from "node:path";
import { test } from "node:test";
import { runCli } from "../support/cli.js";
import { sharedNatsServer } from "../support/nats.js";
import { assertSameRun, stepLosses } from "../support/same-run.js";
import { tempDir, writeMicroModelConfig, writeSyntheticData } from "../support/tiny.js";

const dir = tempDir("equivalence");
const data = writeSyntheticData(dir, 40, 9);
const modelConfig = writeMicroModelConfig(dir);
const nats = sharedNatsServer();
let jobs = 0;

function flags(reduction: string, out: string): string[] {
  return [
    "--data",
    data,
    "--model",
    modelConfig,
    "--steps",
    "20",
    "--batch-size",
    "6",
    "--micro-batch-size",
    "2",
    "--prompt-loss-weight",
    "0.5",
    "--neftune-alpha",
    "5",
    "--loss-reduction",
    reduction,
    "--lr",
    "3e-3",
    "--warmup-steps",
    "3",
    "--seed",
    "3",
    "--eval-fraction",
    "0",
    "--backend",
    "wasm",
    "--out",
    out,
  ];
}

async function train(args: string[]): Promise<void> {
  const result = await runCli(args);
  assert.equal(result.status, 0, result.stderr.slice(-3000));
}

async function launch(workers: number, args: string[], extra: string[] = []): Promise<void> {
  const server = nats();
  if (server === undefined) throw new Error("no nats-server");
  await train([
    "launch",
    "--workers",
    String(workers),
    "--nats",
    server.url,
    "--job",
    `eq${++jobs}`,
    ...extra,
    ...args,
  ]);
}

for (const reduction of ["token", "example", "sum"]) {
  test(
    `equivalence - ${reduction} reduction: train, launch 2 and launch 3 workers agree over 20 steps`,
    { timeout: 240_000 },
    async (t) => {
      const server = nats();
      if (server === undefined) return t.skip("nats-server not installed");
      const single = join(dir, `${reduction}-train`);
      await train(["train", ...flags(reduction, single)]);
      for (const workers of reduction === "token" ? [1, 2, 3] : [2, 3]) {
        const out = join(dir, `${reduction}-launch${workers}`);
        await launch(workers, flags(reduction, out));
        await assertSameRun(single, out, 20);
      }
    },
  );
}

test("equivalence - the ws data plane gives the same run as NATS", { timeout: 120_000 }, async (t) => {
  const server = nats();
  if (server === undefined) return t.skip("nats-server not installed");
  const out = join(dir, "token-ws3");
  await launch(3, flags("token", out), ["--data-plane", "ws"]);
  await assertSameRun(join(dir, "token-train"), out, 20);
});

test(
  "equivalence - a bf16 or fp16 all-reduce keeps the ranks identical and follows the fp32 run to the format's rounding",
  { timeout: 240_000 },
  async (t) => {
    const server = nats();
    if (server === undefined) return t.skip("nats-server not installed");
    const reference = stepLosses(join(dir, "token-train"));
    // One over each data plane: their messages arrive in differently aligned memory.
    for (const [dtype, plane] of [
      ["bf16", "ws"],
      ["fp16", "nats"],
    ] as const) {
      const out = join(dir, `token-${dtype}`);
      // Every 5 steps the ranks compare parameter checksums: a rank that kept its own unrounded sums fails it.
      await launch(2, flags("token", out), [
        ...["--allreduce-dtype", dtype, "--data-plane", plane, "--checksum-every", "5"],
      ]);
      const losses = stepLosses(out);
      assert.equal(losses.length, 20, `${dtype}: steps`);
      const relative = losses.map(
        (loss, i) => Math.abs(loss - (reference[i] ?? NaN)) / Math.abs(reference[i] ?? NaN),
      );
      // Step 1's loss comes before any update; later ones see narrowed gradients, close to fp32's but not equal.
      assert.ok((relative[0] ?? NaN) <= 1e-4, `${dtype}: step 1 differs by ${relative[0]}`);
      assert.ok(
        Math.max(...relative) <= 0.02,
        `${dtype}: losses differ from fp32's by up to ${Math.max(...relative)}`,
      );
      assert.ok(
        Math.max(...relative.slice(1)) > 1e-7,
        `${dtype}: the same losses as fp32: nothing was narrowed`,
      );
    }
  },
);
