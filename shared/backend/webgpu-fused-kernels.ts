// The fused training kernels (fused-kernels.ts) on webgpu, as WGSL programs run by tfjs-backend-webgpu's
// own runner (runWebGPUProgram: its buffer pool, pipeline cache and command encoder), so they queue with
// tfjs's kernels and tf.profile times them like its own. tfjs composes each of these chains from 6–16
// kernels, and a GPU pays a dispatch for each: AdamW alone was ~16 per parameter tensor, half of a small
// model's step (`kernels/<model>/webgpu` in `npm run bench`).
//
// A tfjs program writes one output, so a kernel with several outputs runs one program for each (LayerNorm:
// mean, 1/σ, y; AdamW: param′, m′, v′), each recomputing the little it shares with the others.
// Reductions run one workgroup of LANES lanes per row (LayerNorm's statistics and dx) or per column (the
// gain, bias and column sums): each lane strides over the row or column, then the lanes add in a tree in
// workgroup memory. At GPT-2's shapes that is thousands of workgroups, enough to fill a GPU in one pass.
// Written here, not taken from a package: no library provides tfjs-backend-webgpu programs for these.
import * as tf from "@tensorflow/tfjs-core";
import type { KernelConfig, TensorInfo } from "@tensorflow/tfjs-core";
import {
  ATTENTION_KERNELS,
  attentionShape,
  checkGradientOffset,
  FUSED_KERNELS,
  GELU_NEW,
  rowsOf,
  type AdamWUpdate,
  type AttentionAttrs,
} from "./fused-kernels.js";

/** What runWebGPUProgram reads of a program (tfjs-backend-webgpu's WebGPUProgram, which it does not export). */
interface WebGpuProgram {
  readonly variableNames: string[];
  readonly outputShape: number[];
  shaderKey: string;
  readonly dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  readonly workgroupSize: [number, number, number];
  readonly size: boolean;
  readonly uniforms?: string;
  getUserCode(): string;
}

interface ProgramUniform {
  readonly type: "int32" | "float32";
  readonly data: number[];
}

interface WebGpuBackend {
  runWebGPUProgram(
    program: WebGpuProgram,
    inputs: TensorInfo[],
    dtype: "float32",
    uniforms?: ProgramUniform[],
  ): TensorInfo;
  disposeData(dataId: object): boolean;
}

/** Lanes per workgroup; a power of two (the reduction tree halves it). */
const LANES = 64;

/** A WGSL function that combines every lane's value with `combine` (of a and b), returned to every lane. */
function workgroupReduction(name: string, combine: string): string {
  return `
  fn ${name}(value : f32) -> f32 {
    let l = lane();
    partial[l] = value;
    workgroupBarrier();
    for (var stride = ${LANES / 2}; stride > 0; stride = stride / 2) {
      if (l < stride) {
        let a = partial[l];
        let b = partial[l + stride];
        partial[l] = ${combine};
      }
      workgroupBarrier();
    }
    let total = partial[0];
    workgroupBarrier();
    return total;
  }`;
}

/** WGSL helpers of the reduction programs: which row or column this workgroup has, and workgroup sums. */
const REDUCTION_WGSL = `
  var<workgroup> partial : array<f32, ${LANES}>;
  // The workgroup's position in the whole dispatch (tfjs folds a long one into two or three dimensions).
  fn group() -> i32 {
    return i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x);
  }
  fn lane() -> i32 { return i32(localId.x); }
  // Called by all lanes of the workgroup.
  ${workgroupReduction("workgroupSum", "a + b")}
  ${workgroupReduction("workgroupMax", "max(a, b)")}
`;

interface ProgramSpec {
  readonly key: string;
  readonly inputs: readonly string[];
  readonly outputShape: readonly number[];
  /** WGSL statements of main(index); `index` is the output element for an elementwise program. */
  readonly body: string;
  /** Workgroups of LANES lanes (a reduction, one per row or column), or undefined: one lane per output. */
  readonly groups?: number;
  /** Program-defined uniforms, WGSL declarations and values in the same order. */
  readonly uniforms?: readonly (readonly [string, ProgramUniform])[];
  /** WGSL functions the body calls. */
  readonly functions?: string;
}

/** Runs one program (made afresh: the runner writes its key and dispatch into it) and returns its output. */
function run(backend: unknown, spec: ProgramSpec, inputs: TensorInfo[]): TensorInfo {
  const size = tf.util.sizeFromShape([...spec.outputShape]);
  const program: WebGpuProgram = {
    variableNames: [...spec.inputs],
    outputShape: [...spec.outputShape],
    shaderKey: `imtrain_${spec.key}`,
    dispatchLayout: { x: spec.outputShape.map((_, i) => i) },
    dispatch: [spec.groups ?? Math.ceil(size / LANES), 1, 1],
    workgroupSize: [LANES, 1, 1],
    size: true,
    ...(spec.uniforms ? { uniforms: spec.uniforms.map(([declaration]) => `${declaration},`).join(" ") } : {}),
    getUserCode: () => `
      ${spec.groups === undefined ? "" : REDUCTION_WGSL}
      ${spec.functions ?? ""}
      fn main(index : i32) {
        ${spec.body}
      }`,
  };
  const uniforms = spec.uniforms?.map(([, value]) => value);
  return (backend as WebGpuBackend).runWebGPUProgram(program, inputs, "float32", uniforms);
}

const int = (value: number): ProgramUniform => ({ type: "int32", data: [value] });
const float = (value: number): ProgramUniform => ({ type: "float32", data: [value] });

/** The shape uniforms of a [rows, width] view. */
function shapeUniforms(rows: number, width: number): (readonly [string, ProgramUniform])[] {
  return [
    ["rows : i32", int(rows)],
    ["width : i32", int(width)],
  ];
}

interface ReductionOptions {
  /** WGSL run before the sum (may read `valid` and the row or column). */
  readonly init?: string;
  /** The output value, a WGSL expression of `total` (default: the sum itself). */
  readonly finish?: string;
  readonly uniforms?: readonly (readonly [string, ProgramUniform])[];
}

/**
 * One value per row (summing `element` over the row's columns c) or per column (over the column's rows r)
 * of a [rows, width] view; `element` is a WGSL expression of the flat index i and of r or c.
 */
function reductionProgram(
  key: string,
  inputs: string[],
  [rows, width]: [number, number],
  per: "row" | "column",
  element: string,
  { init = "", finish = "total", uniforms = [] }: ReductionOptions = {},
): ProgramSpec {
  const [count, along, step, index] =
    per === "row"
      ? ["rows", "width", "c", "row * uniforms.width + c"]
      : ["width", "rows", "r", "r * uniforms.width + column"];
  return {
    key,
    inputs,
    outputShape: [per === "row" ? rows : width],
    groups: per === "row" ? rows : width,
    uniforms: [...shapeUniforms(rows, width), ...uniforms],
    body: `
      let ${per} = group();
      let valid = ${per} < uniforms.${count};
      ${init}
      var sum = 0.0;
      if (valid) {
        for (var ${step} = lane(); ${step} < uniforms.${along}; ${step} += ${LANES}) {
          let i = ${index};
          sum += ${element};
        }
      }
      let total = workgroupSum(sum);
      if (valid && lane() == 0) { setOutputAtIndex(${per}, ${finish}); }`,
  };
}

/** x [..., m] summed over every axis but the last. */
function columnSumOf(backend: unknown, x: TensorInfo): TensorInfo {
  return run(backend, reductionProgram("column_sum", ["X"], rowsOf(x), "column", "X[i]"), [x]);
}

const layerNorm: KernelConfig = {
  kernelName: FUSED_KERNELS.layerNorm,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { x, gain, bias } = inputs as Record<"x" | "gain" | "bias", TensorInfo>;
    const { eps } = attrs as unknown as { eps: number };
    const shape = rowsOf(x);
    const [rows, width] = shape;
    const mean = run(
      backend,
      reductionProgram("ln_mean", ["X"], shape, "row", "X[i]", { finish: "total / f32(uniforms.width)" }),
      [x],
    );
    const rstd = run(
      backend,
      reductionProgram("ln_rstd", ["X", "Mean"], shape, "row", "(X[i] - mean) * (X[i] - mean)", {
        init: "var mean = 0.0;\n      if (valid) { mean = Mean[row]; }",
        finish: "inverseSqrt(total / f32(uniforms.width) + uniforms.eps)",
        uniforms: [["eps : f32", float(eps)]],
      }),
      [x, mean],
    );
    const y = run(
      backend,
      {
        key: "ln_y",
        inputs: ["X", "Mean", "Rstd", "Gain", "Bias"],
        outputShape: [...x.shape],
        uniforms: shapeUniforms(rows, width),
        body: `
          if (index < uniforms.size) {
            let r = index / uniforms.width;
            let c = index % uniforms.width;
            setOutputAtIndex(index, (X[index] - Mean[r]) * Rstd[r] * Gain[c] + Bias[c]);
          }`,
      },
      [x, mean, rstd, gain, bias],
    );
    return [y, mean, rstd];
  },
};

/** x̂ of element i in row r, from the forward's statistics. */
const XHAT = "((X[i] - Mean[r]) * Rstd[r])";

const layerNormGrad: KernelConfig = {
  kernelName: FUSED_KERNELS.layerNormGrad,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const { x, gain, mean, rstd, dy } = inputs as Record<"x" | "gain" | "mean" | "rstd" | "dy", TensorInfo>;
    const [rows, width] = rowsOf(x);
    // dx = 1/σ·(dx̂ − mean(dx̂) − x̂·mean(dx̂·x̂)), dx̂ = dy·gain: both means in one pass over the row.
    const dx = run(
      backend,
      {
        key: "ln_dx",
        inputs: ["X", "Gain", "Mean", "Rstd", "Dy"],
        outputShape: [...x.shape],
        groups: rows,
        uniforms: shapeUniforms(rows, width),
        body: `
          let r = group();
          let valid = r < uniforms.rows;
          var a = 0.0;
          var b = 0.0;
          if (valid) {
            for (var c = lane(); c < uniforms.width; c += ${LANES}) {
              let i = r * uniforms.width + c;
              let dxhat = Dy[i] * Gain[c];
              a += dxhat;
              b += dxhat * ${XHAT};
            }
          }
          let meanDxhat = workgroupSum(a) / f32(uniforms.width);
          let meanDxhatXhat = workgroupSum(b) / f32(uniforms.width);
          if (valid) {
            for (var c = lane(); c < uniforms.width; c += ${LANES}) {
              let i = r * uniforms.width + c;
              let dxhat = Dy[i] * Gain[c];
              setOutputAtIndex(i, Rstd[r] * (dxhat - meanDxhat - ${XHAT} * meanDxhatXhat));
            }
          }`,
      },
      [x, gain, mean, rstd, dy],
    );
    const dgain = run(
      backend,
      reductionProgram("ln_dgain", ["X", "Mean", "Rstd", "Dy"], [rows, width], "column", `Dy[i] * ${XHAT}`),
      [x, mean, rstd, dy],
    );
    const dbias = columnSumOf(backend, dy);
    return [dx, dgain, dbias];
  },
};

const columnSum: KernelConfig = {
  kernelName: FUSED_KERNELS.columnSum,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    return columnSumOf(backend, x);
  },
};

/** AdamW's three outputs from the same inputs; `which` picks the one a program writes. */
function adamWProgram(
  which: "param" | "m" | "v",
  shape: readonly number[],
  update: AdamWUpdate,
): ProgramSpec {
  const { beta1, beta2, epsilon, correction1, correction2, lr, decay, gradientOffset } = update;
  const written = { param: "newParam", m: "moment1", v: "moment2" }[which];
  return {
    key: `adamw_${which}`,
    inputs: ["P", "M", "V", "G"],
    outputShape: [...shape],
    uniforms: [
      ["beta1 : f32", float(beta1)],
      ["keep1 : f32", float(1 - beta1)],
      ["beta2 : f32", float(beta2)],
      ["keep2 : f32", float(1 - beta2)],
      ["epsilon : f32", float(epsilon)],
      ["step : f32", float(lr / correction1)],
      ["inverse2 : f32", float(1 / correction2)],
      ["shrink : f32", float(1 - decay)],
      ["gradientOffset : i32", int(gradientOffset)],
    ],
    // As adamw.c: m′ = β1·m + (1−β1)·g, v′ = β2·v + (1−β2)·g², p′ = p·(1 − lr·wd) − (lr/c1)·m′/(√(v′/c2) + ε).
    body: `
      if (index < uniforms.size) {
        let g = G[index + uniforms.gradientOffset];
        let moment1 = uniforms.beta1 * M[index] + uniforms.keep1 * g;
        let moment2 = uniforms.beta2 * V[index] + uniforms.keep2 * g * g;
        let update = (uniforms.step * moment1) / (sqrt(moment2 * uniforms.inverse2) + uniforms.epsilon);
        // Every variant reads every input: a binding the shader never uses is left out of its layout.
        let newParam = P[index] * uniforms.shrink - update;
        setOutputAtIndex(index, ${written});
      }`,
  };
}

const adamW: KernelConfig = {
  kernelName: FUSED_KERNELS.adamW,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { param, m, v, g } = inputs as Record<"param" | "m" | "v" | "g", TensorInfo>;
    const update = attrs as unknown as AdamWUpdate;
    checkGradientOffset(update.gradientOffset, tf.util.sizeFromShape(param.shape), g);
    return (["param", "m", "v"] as const).map((which) =>
      run(backend, adamWProgram(which, param.shape, update), [param, m, v, g]),
    );
  },
};

/**
 * σ(z) of gelu_new, z = x·(a + b·x²) (ops.ts), through e^−|z|, which cannot overflow (WGSL leaves an
 * overflowing exp's value to the implementation).
 */
const GELU_SIGMOID = `sigmoidOf(x * (${GELU_NEW.a} + ${GELU_NEW.b} * x * x))`;
const SIGMOID_WGSL = `
  fn sigmoidOf(z : f32) -> f32 {
    let e = exp(-abs(z));
    return select(e / (1.0 + e), 1.0 / (1.0 + e), z >= 0.0);
  }`;

function geluProgram(key: string, shape: readonly number[], written: string): ProgramSpec {
  return {
    key,
    inputs: ["X"],
    outputShape: [...shape],
    functions: SIGMOID_WGSL,
    body: `
      if (index < uniforms.size) {
        let x = X[index];
        let s = ${GELU_SIGMOID};
        setOutputAtIndex(index, ${written});
      }`,
  };
}

const gelu: KernelConfig = {
  kernelName: FUSED_KERNELS.gelu,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const { x } = inputs as { x: TensorInfo };
    return [
      run(backend, geluProgram("gelu_y", x.shape, "x * s"), [x]),
      run(backend, geluProgram("gelu_s", x.shape, "s"), [x]),
    ];
  },
};

const geluGrad: KernelConfig = {
  kernelName: FUSED_KERNELS.geluGrad,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend }) => {
    const { x, s, dy } = inputs as Record<"x" | "s" | "dy", TensorInfo>;
    // y′ = s + x·s·(1 − s)·z′, z′ = a + 3b·x².
    return run(
      backend,
      {
        key: "gelu_grad",
        inputs: ["X", "S", "Dy"],
        outputShape: [...x.shape],
        body: `
          if (index < uniforms.size) {
            let x = X[index];
            let s = S[index];
            let slope = ${GELU_NEW.a} + ${3 * GELU_NEW.b} * x * x;
            setOutputAtIndex(index, Dy[index] * (s + x * (s * (1.0 - s)) * slope));
          }`,
      },
      [x, s, dy],
    );
  },
};

/**
 * Attention's shape uniforms, and WGSL naming qkv's parts: batch b, position t, head h and element e of
 * the head are at row b·T + t of qkv [B·T, 3d], column h·hs + e (queries), d + … (keys), 2d + … (values).
 */
function attentionUniforms(qkv: TensorInfo, attrs: AttentionAttrs): (readonly [string, ProgramUniform])[] {
  const [batch, length, heads, headSize] = attentionShape(qkv, attrs);
  return [
    ["weightRows : i32", int(batch * heads * length)],
    ["seqLen : i32", int(length)],
    ["heads : i32", int(heads)],
    ["headSize : i32", int(headSize)],
    ["model : i32", int(heads * headSize)],
    ["scale : f32", float(attrs.scale)],
  ];
}

const ATTENTION_WGSL = `
  // Where part p (0 queries, 1 keys, 2 values) of position t of batch b, head h starts in qkv.
  fn qkvAt(p : i32, b : i32, t : i32, h : i32) -> i32 {
    return (b * uniforms.seqLen + t) * 3 * uniforms.model + p * uniforms.model + h * uniforms.headSize;
  }
  // Where position t of batch b, head h starts in the context (and its gradient), [B·T, d].
  fn contextAt(b : i32, t : i32, h : i32) -> i32 {
    return (b * uniforms.seqLen + t) * uniforms.model + h * uniforms.headSize;
  }`;

/** One workgroup per query row (b, h, i) of the weights [B·heads, T, T]: its place, for `body`. */
const WEIGHT_ROW_WGSL = `
  let g = group();
  let valid = g < uniforms.weightRows;
  let T = uniforms.seqLen;
  let i = g % T;
  let b = g / T / uniforms.heads;
  let h = (g / T) % uniforms.heads;
  let row = g * T;`;

/**
 * Forward: the weights, softmax over j ≤ i of scale·q_i·k_j, one workgroup per query row (the scores are
 * written where the weights go, then normalised in place); then the context, one lane per element,
 * o_i = Σ_j p_ij·v_j.
 */
const causalAttention: KernelConfig = {
  kernelName: ATTENTION_KERNELS.forward,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { qkv } = inputs as { qkv: TensorInfo };
    const shape = attrs as unknown as AttentionAttrs;
    const [batch, length, heads, headSize] = attentionShape(qkv, shape);
    const uniforms = attentionUniforms(qkv, shape);
    const weights = run(
      backend,
      {
        key: "attention_weights",
        inputs: ["QKV"],
        outputShape: [batch * heads, length, length],
        groups: batch * heads * length,
        uniforms,
        body: `
          ${WEIGHT_ROW_WGSL}
          var largest = -3.0e38;
          if (valid) {
            for (var j = lane(); j <= i; j += ${LANES}) {
              var score = 0.0;
              for (var e = 0; e < uniforms.headSize; e++) {
                score += QKV[qkvAt(0, b, i, h) + e] * QKV[qkvAt(1, b, j, h) + e];
              }
              score = score * uniforms.scale;
              result[row + j] = score;
              largest = max(largest, score);
            }
          }
          let rowMax = workgroupMax(largest);
          var sum = 0.0;
          if (valid) {
            for (var j = lane(); j <= i; j += ${LANES}) {
              let p = exp(result[row + j] - rowMax);
              result[row + j] = p;
              sum += p;
            }
          }
          let total = workgroupSum(sum);
          if (valid) {
            for (var j = lane(); j < T; j += ${LANES}) {
              result[row + j] = select(0.0, result[row + j] / total, j <= i);
            }
          }`,
        functions: ATTENTION_WGSL,
      },
      [qkv],
    );
    const context = run(
      backend,
      {
        key: "attention_context",
        inputs: ["QKV", "Weights"],
        outputShape: [batch * length, heads * headSize],
        uniforms,
        functions: ATTENTION_WGSL,
        body: `
          if (index < uniforms.size) {
            let r = index / uniforms.model;
            let c = index % uniforms.model;
            let b = r / uniforms.seqLen;
            let t = r % uniforms.seqLen;
            let h = c / uniforms.headSize;
            let e = c % uniforms.headSize;
            let weights = ((b * uniforms.heads + h) * uniforms.seqLen + t) * uniforms.seqLen;
            var o = 0.0;
            for (var j = 0; j <= t; j++) { o += Weights[weights + j] * QKV[qkvAt(2, b, j, h) + e]; }
            setOutputAtIndex(index, o);
          }`,
      },
      [qkv, weights],
    );
    return [context, weights];
  },
};

/**
 * Backward, with D_i = dO_i·o_i: dS_ij = p_ij·(dO_i·v_j − D_i), one workgroup per query row; then dqkv, one
 * lane per element: dq_i = scale·Σ_{j≤i} dS_ij·k_j, dk_j = scale·Σ_{i≥j} dS_ij·q_i, dv_j = Σ_{i≥j} p_ij·dO_i.
 */
const causalAttentionGrad: KernelConfig = {
  kernelName: ATTENTION_KERNELS.backward,
  backendName: "webgpu",
  kernelFunc: ({ inputs, backend, attrs }) => {
    const { qkv, probs, context, dContext } = inputs as Record<
      "qkv" | "probs" | "context" | "dContext",
      TensorInfo
    >;
    const shape = attrs as unknown as AttentionAttrs;
    const [batch, length, heads] = attentionShape(qkv, shape);
    const uniforms = attentionUniforms(qkv, shape);
    const dScores = run(
      backend,
      {
        key: "attention_dscores",
        inputs: ["QKV", "Weights", "O", "DO"],
        outputShape: [batch * heads, length, length],
        groups: batch * heads * length,
        uniforms,
        functions: ATTENTION_WGSL,
        body: `
          ${WEIGHT_ROW_WGSL}
          var part = 0.0;
          if (valid) {
            for (var e = lane(); e < uniforms.headSize; e += ${LANES}) {
              part += DO[contextAt(b, i, h) + e] * O[contextAt(b, i, h) + e];
            }
          }
          let d = workgroupSum(part);
          if (valid) {
            for (var j = lane(); j < T; j += ${LANES}) {
              var ds = 0.0;
              if (j <= i) {
                var dp = 0.0;
                for (var e = 0; e < uniforms.headSize; e++) {
                  dp += DO[contextAt(b, i, h) + e] * QKV[qkvAt(2, b, j, h) + e];
                }
                ds = Weights[row + j] * (dp - d);
              }
              setOutputAtIndex(row + j, ds);
            }
          }`,
      },
      [qkv, probs, context, dContext],
    );
    const dqkv = run(
      backend,
      {
        key: "attention_dqkv",
        inputs: ["QKV", "Weights", "DS", "DO"],
        outputShape: [...qkv.shape],
        uniforms,
        functions: ATTENTION_WGSL,
        body: `
          if (index < uniforms.size) {
            let T = uniforms.seqLen;
            let r = index / (3 * uniforms.model);
            let p = (index % (3 * uniforms.model)) / uniforms.model;
            let c = index % uniforms.model;
            let b = r / T;
            let t = r % T;
            let h = c / uniforms.headSize;
            let e = c % uniforms.headSize;
            let rows = (b * uniforms.heads + h) * T;
            var sum = 0.0;
            if (p == 0) {
              for (var j = 0; j <= t; j++) { sum += DS[(rows + t) * T + j] * QKV[qkvAt(1, b, j, h) + e]; }
              sum = sum * uniforms.scale;
            } else if (p == 1) {
              for (var q = t; q < T; q++) { sum += DS[(rows + q) * T + t] * QKV[qkvAt(0, b, q, h) + e]; }
              sum = sum * uniforms.scale;
            } else {
              for (var q = t; q < T; q++) { sum += Weights[(rows + q) * T + t] * DO[contextAt(b, q, h) + e]; }
            }
            setOutputAtIndex(index, sum);
          }`,
      },
      [qkv, probs, dScores, dContext],
    );
    (backend as WebGpuBackend).disposeData(dScores.dataId);
    return dqkv;
  },
};

const WEBGPU_FUSED_KERNELS: readonly KernelConfig[] = [
  causalAttention,
  causalAttentionGrad,
  layerNorm,
  layerNormGrad,
  columnSum,
  adamW,
  gelu,
  geluGrad,
];

/** Registers the fused kernels on webgpu (idempotent). */
export function registerWebGpuFusedKernels(): void {
  for (const kernel of WEBGPU_FUSED_KERNELS)
    if (tf.getKernel(kernel.kernelName, "webgpu") === undefined) tf.registerKernel(kernel);
}
