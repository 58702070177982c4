// The one flat Float32Array a rank all-reduces each step: every parameter's gradient in
// parameterShapes order, then the step totals (loss sums, normaliser share, counts) behind them, so a
// single all-reduce carries both and the normaliser is global by construction.

export const STEP_TOTALS = [
  "objective", // Σ c·w·(CE + β·KL): the numerator of the trained loss
  "normaliserShare", // see loss.ts
  "outputLossSum", // Σ CE over output tokens
  "outputTokens",
  "lossTokens", // predictions with weight > 0
  "tokens", // real (unpadded) tokens
  "examples",
] as const;
export type StepTotals = Record<(typeof STEP_TOTALS)[number], number>;

export class StepBufferLayout {
  readonly offsets = new Map<string, number>();
  readonly gradientSize: number;
  readonly size: number;

  constructor(readonly shapes: ReadonlyMap<string, readonly number[]>) {
    let offset = 0;
    for (const [name, shape] of shapes) {
      this.offsets.set(name, offset);
      offset += shape.reduce((a, b) => a * b, 1);
    }
    this.gradientSize = offset;
    this.size = offset + STEP_TOTALS.length;
  }

  /** A view of one parameter's slice of the buffer. */
  slice(buffer: Float32Array, name: string): Float32Array {
    const offset = this.offsets.get(name);
    const shape = this.shapes.get(name);
    if (offset === undefined || shape === undefined) throw new Error(`no parameter ${name} in layout`);
    return buffer.subarray(offset, offset + shape.reduce((a, b) => a * b, 1));
  }

  gradients(buffer: Float32Array): Float32Array {
    return buffer.subarray(0, this.gradientSize);
  }

  readTotals(buffer: Float32Array): StepTotals {
    const entries = STEP_TOTALS.map((key, i) => [key, buffer[this.gradientSize + i] ?? 0] as const);
    return Object.fromEntries(entries) as StepTotals;
  }

  writeTotals(buffer: Float32Array, totals: StepTotals): void {
    STEP_TOTALS.forEach((key, i) => (buffer[this.gradientSize + i] = totals[key]));
  }
}

/** Scales gradients so their global L2 norm is at most `maxNorm` (0 = no clipping); returns the norm before. */
export function clipGradNorm(gradients: Float32Array, maxNorm: number): number {
  let sumSquares = 0;
  for (const g of gradients) sumSquares += g * g;
  const norm = Math.sqrt(sumSquares);
  if (maxNorm > 0 && norm > maxNorm) {
    const scale = maxNorm / (norm + 1e-6);
    for (let i = 0; i < gradients.length; i++) gradients[i] = (gradients[i] ?? 0) * scale;
  }
  return norm;
}
