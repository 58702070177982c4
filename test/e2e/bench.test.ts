// `npm run bench -- --quick`, the same code as the full bench on small sizes: every line is a figure
// {name, value, unit}, a ratio is its value over its ceiling, and the compute, memory, all-reduce and
// scaling figures are all there with the shapes they measured. Speed targets live in the bench's figures, not here.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { runNodeScript } from "../support/cli.js";
import { fileURLToPath } from "node:url";
import type { Figure } from "../../bench/figure.js";

const BENCH = join(dirname(fileURLToPath(import.meta.url)), "../../bench/main.js");

function bench(args: readonly string[]) {
  return runNodeScript(BENCH, args);
}

test(
  "bench --quick - every line is a figure; matmul, train step, memory, metrics and scaling are measured",
  { timeout: 300_000 },
  async () => {
    const result = await bench([
      "--quick",
      "--backend",
      "wasm",
      "--skip-torch",
      "--allreduce-dtypes",
      "fp32,bf16",
    ]);
    assert.equal(result.status, 0, result.stderr.slice(-3000));
    const figures = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as Figure);
    for (const f of figures) {
      assert.equal(typeof f.name, "string", JSON.stringify(f));
      assert.equal(typeof f.unit, "string", JSON.stringify(f));
      assert.ok(Number.isFinite(f.value) && f.value > 0, JSON.stringify(f));
      if (f.ceiling !== undefined)
        assert.ok(Math.abs((f.ratio ?? NaN) - f.value / f.ceiling) < 1e-12, JSON.stringify(f));
    }
    const named = (name: string) => figures.find((f) => f.name === name);
    const matmul = named("matmul/256/wasm");
    const step = named("train_step/tiny/wasm");
    assert.ok(matmul && step, result.stdout);
    assert.equal(step.ceiling, matmul.value, "a step is measured against the run's own matmul ceiling");
    assert.equal(step["batch"], 2);
    assert.ok((step["tokens_per_s"] as number) > 0);
    assert.ok((named("memory/tiny")?.ratio ?? 0) >= 1, "the peak is at least the theoretical minimum");
    assert.ok(named("metrics/record_step/n8") && named("metrics/collect/n64"), result.stdout);
    const tcp = named("tcp_loopback");
    // Two processes each sending and receiving 64 MiB: the N = 2 ring's pattern, over sockets alone.
    assert.equal(named("tcp_loopback_pair")?.["bytes"], 64 * 2 ** 20, result.stdout);
    for (const plane of ["nats", "ws"]) {
      const allreduce = named(`allreduce/${plane}/n2/262144`);
      assert.ok(allreduce, `allreduce over ${plane}: ${result.stdout}`);
      assert.equal(allreduce.ceiling, tcp?.value, "busbw is measured against one loopback TCP stream");
      // bf16 sends half the bytes of the same gradient: its bandwidth bound is half the time.
      const bf16 = named(`allreduce/${plane}/n2/262144/bf16`);
      assert.equal(bf16?.["wire_dtype"], "bf16", `bf16 over ${plane}: ${result.stdout}`);
      assert.ok(
        Math.abs((bf16["bound_seconds"] as number) * 2 - (allreduce["bound_seconds"] as number)) < 1e-12,
        JSON.stringify([bf16, allreduce]),
      );
    }
    const scaling = named("scaling_2v1");
    assert.equal(scaling?.ceiling, 2);
    assert.equal(named("dist_overhead")?.ceiling, scaling?.["train_tokens_per_s"]);
    const pair = scaling?.["independent_pair_tokens_per_s"] as number[];
    assert.equal(pair.length, 2);
    assert.ok(
      Math.abs(
        (named("independent_2v1")?.value ?? NaN) -
          (pair[0]! + pair[1]!) / (scaling?.["train_tokens_per_s"] as number),
      ) < 1e-9,
    );
  },
);

test(
  "bench - --composite-ops runs tfjs's composite ops in place of the fused kernels, and says so in the figures",
  { timeout: 180_000 },
  async () => {
    const skips = ["--skip-matmul", "--skip-allreduce", "--skip-scaling", "--skip-metrics", "--skip-torch"];
    const common = [
      "--backend",
      "wasm",
      "--models",
      "tiny",
      "--seq",
      "32",
      "--batch",
      "2",
      "--memory-model",
      "",
    ];
    const [fused, composite] = await Promise.all([
      bench([...common, ...skips]),
      bench([...common, ...skips, "--composite-ops"]),
    ]);
    for (const run of [fused, composite]) assert.equal(run.status, 0, run.stderr.slice(-3000));
    assert.match(composite.stderr, /composite ops in place of 8 fused kernels/);
    const kernels = (run: { stdout: string }) => {
      const line = run.stdout.split("\n").find((l) => l.includes('"kernels/tiny/wasm"'));
      assert.ok(line, run.stdout);
      return JSON.parse(line) as Figure;
    };
    assert.equal(kernels(fused)["fused_kernels"], true);
    assert.equal(kernels(composite)["fused_kernels"], false);
    const names = (figure: Figure) => (figure["costliest"] as { name: string }[]).map((k) => k.name);
    assert.ok(!names(kernels(composite)).some((name) => name.startsWith("Imtrain")), composite.stdout);
    assert.ok(kernels(composite).value > kernels(fused).value, `${composite.stdout}\n${fused.stdout}`);
  },
);

test(
  "bench - a typo in a flag stops it before anything is measured, naming the flag",
  { timeout: 60_000 },
  async () => {
    const result = await bench(["--quick", "--models", "tiny,huge"]);
    assert.equal(result.status, 2);
    assert.equal(result.stdout, "");
    assert.equal(result.stderr.trim(), 'imtrain: --models: "huge" is not tiny, small, medium, gpt2, d128');
  },
);

test(
  "bench - --help prints what each figure is and the flags; a flag it does not know is one line and exit 2",
  { timeout: 60_000 },
  async () => {
    const help = await bench(["--help"]);
    assert.equal(help.status, 0, help.stderr);
    for (const word of ["train_step/<model>/<backend>", "--quick", "--skip-torch", "--world-sizes"])
      assert.ok(help.stdout.includes(word), `--help mentions ${word}: ${help.stdout}`);
    const unknown = await bench(["--quick", "--bogus"]);
    assert.equal(unknown.status, 2);
    assert.equal(unknown.stdout, "");
    assert.equal(unknown.stderr.trim(), "imtrain: Unknown option '--bogus' (--help lists the flags)");
  },
);
