// One line of `npm run bench`: {name, value, unit, ceiling, ratio, …details}. A ceiling is what the value
// is measured against — the backend's own 2-D matmul GFLOP/s for a training step, one loopback TCP
// stream for an all-reduce, ideal scaling, PyTorch on the same shape — and ratio = value ÷ ceiling, so
// each line says how close to its limit it is. Names: train_step/<model>/<backend>, matmul/<n>/<backend>,
// allreduce/<plane>/n<N>/<bytes>, scaling_2v1, dist_overhead, memory/<model>, ….
export interface Figure {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly ceiling?: number;
  readonly ratio?: number;
  readonly [detail: string]: unknown;
}

export type Emit = (figure: Figure) => void;

/** A figure; with a ceiling, its ratio. `details` say what was measured (shapes, backend, times). */
export function figure(
  name: string,
  value: number,
  unit: string,
  details: Record<string, unknown> = {},
  ceiling?: number,
): Figure {
  const bounded = ceiling === undefined ? {} : { ceiling, ratio: value / ceiling };
  return { name, value, unit, ...bounded, ...details };
}

export const emitLine: Emit = (line) => {
  process.stdout.write(JSON.stringify(line) + "\n");
};
