// Checked before training on webgpu: a tensor larger than the adapter's largest storage-buffer binding
// does not fail, Dawn only prints a warning and matMul returns zeros. So the largest tensors a step makes
// are sized up front, and a run that would hit the limit stops with the flag to lower.
import { BackendError } from "../errors.js";
import type { GptConfig } from "../model/config.js";
import { parameterCount } from "../metrics/flops.js";
import type { AdapterReport } from "./adapter.js";

const FLOAT32_BYTES = 4;

interface LargeTensor {
  readonly what: string;
  readonly bytes: number;
  /** What to lower; undefined where no flag helps (the model itself). */
  readonly remedy: string | undefined;
}

/**
 * The largest tensors of one forward/backward pass of `config` on a micro-batch of `microBatchSize`
 * examples of at most `sequenceTokens` positions.
 */
export function largestTensors(
  config: GptConfig,
  microBatchSize: number,
  sequenceTokens: number,
): LargeTensor[] {
  const { vocabSize: V, embedDim: d, heads } = config;
  const B = microBatchSize;
  const T = sequenceTokens;
  const lower = `lower --micro-batch-size (${B}) or --context-length (${T})`;
  const parameters = parameterCount(config);
  return [
    {
      what: `the token embedding [V=${V}, d=${d}]`,
      bytes: V * d * FLOAT32_BYTES,
      remedy: undefined,
    },
    {
      // AdamW's fused kernel binds this one tensor whole and reads each parameter's part at an offset.
      what: `a step's gradients, uploaded as one tensor [${parameters} parameters]`,
      bytes: parameters * FLOAT32_BYTES,
      remedy: undefined,
    },
    {
      what: `a micro-batch's logits [B·T=${B}·${T}, V=${V}]`,
      bytes: B * T * V * FLOAT32_BYTES,
      remedy: lower,
    },
    {
      what: `a micro-batch's attention scores [B·heads=${B}·${heads}, T=${T}, T]`,
      bytes: B * heads * T * T * FLOAT32_BYTES,
      remedy: lower,
    },
    {
      what: `a micro-batch's MLP activations [B·T=${B}·${T}, 4d=${4 * d}]`,
      bytes: B * T * 4 * d * FLOAT32_BYTES,
      remedy: lower,
    },
  ];
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

/** Throws, naming the tensor and the flag to lower, if one of the largest tensors exceeds the adapter's limits. */
export function checkWebGpuLimits(
  adapter: AdapterReport,
  config: GptConfig,
  microBatchSize: number,
  sequenceTokens: number,
): void {
  const limit = Math.min(adapter.maxStorageBufferBindingSize, adapter.maxBufferSize);
  const limitName =
    limit === adapter.maxStorageBufferBindingSize ? "max storage buffer binding" : "max buffer size";
  for (const tensor of largestTensors(config, microBatchSize, sequenceTokens)) {
    if (tensor.bytes <= limit) continue;
    throw new BackendError(
      "webgpu",
      `${tensor.what} takes ${mib(tensor.bytes)}, above adapter "${adapter.name}"'s ${limitName} of ` +
        `${mib(limit)} (above it matMul silently returns zeros): ` +
        (tensor.remedy ?? "this model does not fit this adapter; use a smaller model or another backend"),
    );
  }
}

/** Input positions of the longest example in `sets` (a micro-batch is as long as its longest example). */
export function longestInput(sets: readonly (readonly { readonly ids: ArrayLike<number> }[])[]): number {
  let longest = 1;
  for (const examples of sets)
    for (const example of examples) longest = Math.max(longest, example.ids.length - 1);
  return longest;
}
