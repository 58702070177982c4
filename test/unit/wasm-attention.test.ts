// Causal self-attention (shared/model/ops.ts causalSelfAttention): wasm's two kernels of our own
// (shared/backend/wasm/attention.c) and the tfjs composite other backends run, each against attention
// written out here in float64, values and gradients, for head sizes on and off the SIMD width. And the
// committed module is attention.c compiled (where clang is installed; always under CI=true).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { test } from "node:test";
import * as tf from "@tensorflow/tfjs-core";
import { selectBackend } from "../../shared/backend/select.js";
import { ATTENTION_KERNELS, hasAttentionKernels } from "../../shared/backend/fused-kernels.js";
import { causalSelfAttention } from "../../shared/model/ops.js";
import { mulberry32 } from "../../shared/random.js";
import { findBinary } from "../support/prometheus.js";

interface Shape {
  readonly batch: number;
  readonly length: number;
  readonly heads: number;
  readonly headSize: number;
}

function add(values: Float64Array, i: number, x: number): void {
  values[i] = (values[i] ?? 0) + x;
}

/** Attention in float64: qkv [B·T, 3d], dContext [B·T, d] → context [B·T, d] and dqkv [B·T, 3d]. */
function reference(qkv: Float64Array, dContext: Float64Array, shape: Shape) {
  const { batch: B, length: T, heads: H, headSize: hs } = shape;
  const d = H * hs;
  const scale = 1 / Math.sqrt(hs);
  const context = new Float64Array(B * T * d);
  const dqkv = new Float64Array(B * T * 3 * d);
  const at = (b: number, t: number, part: number, h: number, c: number) =>
    (b * T + t) * 3 * d + part * d + h * hs + c;
  const dot = (b: number, i: number, pi: number, j: number, pj: number, h: number) => {
    let s = 0;
    for (let c = 0; c < hs; c++) s += (qkv[at(b, i, pi, h, c)] ?? 0) * (qkv[at(b, j, pj, h, c)] ?? 0);
    return s;
  };
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < T; i++) {
        const scores = Array.from({ length: i + 1 }, (_, j) => scale * dot(b, i, 0, j, 1, h));
        const top = Math.max(...scores);
        const exps = scores.map((s) => Math.exp(s - top));
        const total = exps.reduce((x, y) => x + y, 0);
        const p = exps.map((e) => e / total);
        const dO = (c: number) => dContext[(b * T + i) * d + h * hs + c] ?? 0;
        const dP = p.map((_, j) => {
          let s = 0;
          for (let c = 0; c < hs; c++) s += dO(c) * (qkv[at(b, j, 2, h, c)] ?? 0);
          return s;
        });
        const D = p.reduce((sum, pj, j) => sum + pj * (dP[j] ?? 0), 0);
        p.forEach((pj, j) => {
          const dS = pj * ((dP[j] ?? 0) - D) * scale;
          for (let c = 0; c < hs; c++) {
            add(context, (b * T + i) * d + h * hs + c, pj * (qkv[at(b, j, 2, h, c)] ?? 0));
            add(dqkv, at(b, i, 0, h, c), dS * (qkv[at(b, j, 1, h, c)] ?? 0));
            add(dqkv, at(b, j, 1, h, c), dS * (qkv[at(b, i, 0, h, c)] ?? 0));
            add(dqkv, at(b, j, 2, h, c), pj * dO(c));
          }
        });
      }
    }
  }
  return { context, dqkv };
}

/** causalSelfAttention's value and the gradient of Σ context ⊙ dContext, on the current backend. */
async function attention(qkv: Float32Array, dContext: Float32Array, shape: Shape) {
  const { batch: B, length: T, heads: H, headSize: hs } = shape;
  const input = tf.tensor2d(qkv, [B * T, 3 * H * hs]);
  const upstream = tf.tensor2d(dContext, [B * T, H * hs]);
  const { value, grads } = tf.valueAndGrads((x: tf.Tensor) =>
    tf.sum(tf.mul(causalSelfAttention(x as tf.Tensor2D, B, H), upstream)),
  )([input]);
  const context = causalSelfAttention(input, B, H);
  const result = { context: await context.data(), dqkv: await (grads[0] as tf.Tensor).data() };
  tf.dispose([input, upstream, value, context, ...grads]);
  return result;
}

/** Random inputs; `spread` scales q and k, so scores reach ±spread²·√hs (softmax's stability). */
function inputs(shape: Shape, seed: number, spread = 1) {
  const random = mulberry32(seed);
  const d = shape.heads * shape.headSize;
  const rows = shape.batch * shape.length;
  const qkv = Float32Array.from(
    { length: rows * 3 * d },
    (_, i) => (random() * 2 - 1) * (i % (3 * d) < 2 * d ? spread : 1),
  );
  const dContext = Float32Array.from({ length: rows * d }, () => random() * 2 - 1);
  return { qkv, dContext };
}

function assertClose(got: ArrayLike<number>, want: Float64Array, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) {
    const [g, w] = [got[i] ?? NaN, want[i] ?? NaN];
    assert.ok(Math.abs(g - w) <= 2e-5 * (1 + Math.abs(w)), `${what}[${i}] = ${g}, want ${w}`);
  }
}

const SHAPES: readonly (Shape & { readonly spread?: number })[] = [
  { batch: 2, length: 5, heads: 2, headSize: 4 },
  { batch: 1, length: 6, heads: 1, headSize: 8 }, // a last block of 2 rows
  { batch: 2, length: 10, heads: 2, headSize: 3 }, // 2 rows again, and a head smaller than one lane set
  { batch: 1, length: 7, heads: 3, headSize: 5 }, // off the SIMD width: the scalar tails
  { batch: 3, length: 1, heads: 1, headSize: 8 }, // one position: softmax of one score
  { batch: 2, length: 33, heads: 2, headSize: 12 }, // 8 + 4 lanes
  { batch: 1, length: 16, heads: 2, headSize: 16, spread: 6 }, // scores in the hundreds
];

for (const backend of ["wasm", "cpu"]) {
  test(`attention - ${backend}: context and gradient equal attention written out in float64`, async () => {
    if (backend === "wasm") await selectBackend("wasm");
    else await tf.setBackend("cpu");
    for (const [n, shape] of SHAPES.entries()) {
      const { qkv, dContext } = inputs(shape, 100 + n, shape.spread);
      const want = reference(Float64Array.from(qkv), Float64Array.from(dContext), shape);
      const got = await attention(qkv, dContext, shape);
      const name = `${backend} B${shape.batch} T${shape.length} H${shape.heads} hs${shape.headSize}`;
      assertClose(got.context, want.context, `${name} context`);
      assertClose(got.dqkv, want.dqkv, `${name} dqkv`);
    }
  });
}

test("attention - on wasm it is imtrain's kernel pair, bound to the heap of the backend in use (also after an engine reset)", async () => {
  const shape = { batch: 2, length: 9, heads: 2, headSize: 8 };
  const { qkv, dContext } = inputs(shape, 7);
  await selectBackend("wasm");
  assert.ok(hasAttentionKernels());
  let first: Awaited<ReturnType<typeof attention>> | undefined;
  const profile = await tf.profile(async () => {
    first = await attention(qkv, dContext, shape);
  });
  const names = profile.kernels.map((k) => k.name);
  assert.ok(names.includes(ATTENTION_KERNELS.forward), names.join(" "));
  assert.ok(names.includes(ATTENTION_KERNELS.backward), names.join(" "));
  assert.ok(!names.includes("BatchMatMul") && !names.includes("Softmax"), names.join(" "));
  // A reset makes a new wasm backend with a new heap: the kernels must work in that one, not the old.
  tf.engine().reset();
  await selectBackend("wasm");
  assert.deepEqual(await attention(qkv, dContext, shape), first);
  // And the composite (cpu) after a reset: its cached constants belonged to the old backend.
  await tf.setBackend("cpu");
  const onCpu = await attention(qkv, dContext, shape);
  tf.engine().reset();
  await tf.setBackend("cpu");
  assert.deepEqual(await attention(qkv, dContext, shape), onCpu);
});

test(
  "attention - the committed module is shared/backend/wasm/*.c compiled (build.sh --check)",
  { timeout: 120_000 },
  (t) => {
    const script = fileURLToPath(new URL("../../../shared/backend/wasm/build.sh", import.meta.url));
    const ci = process.env.CI === "true";
    const missing = ["clang", "wasm-ld", "wasm-objdump"].filter((tool) => findBinary(tool) === undefined);
    if (missing.length > 0 && !ci) return t.skip(`${missing.join(", ")} not installed (CI installs them)`);
    const check = spawnSync("bash", [script, "--check"], { encoding: "utf8", timeout: 100_000 });
    // 3: another clang than the module's (its bytes differ); CI has the module's, Debian 12's.
    if (check.status === 3 && !ci) return t.skip(check.stderr.trim());
    assert.equal(check.status, 0, check.stderr);
  },
);
