// LayerNorm over rows of d, forward and backward, for tfjs-backend-wasm's heap (see attention.c for how
// the module works in tfjs's memory). tfjs composes it from ~10 kernels each way; these were JavaScript
// loops over the heap (a few ns an element), now SIMD128. Row sums in float32 lanes; the gain's and
// bias's gradients, sums over every row, in float64.

#include "simd.h"

/** x [rows, d] → y = (x − μ)/σ·gain + bias, and each row's μ and 1/σ (σ² the biased variance + eps). */
__attribute__((export_name("layer_norm_forward"))) void layer_norm_forward(const float *x, const float *gain,
                                                                           const float *bias, float *y,
                                                                           float *mean, float *rstd, u32 rows,
                                                                           u32 d, float eps) {
  for (u32 r = 0; r < rows; r++) {
    const float *xr = x + r * d;
    float *yr = y + r * d;
    v128_t sum4 = wasm_f32x4_splat(0.0f);
    u32 i = 0;
    for (; i + 4 <= d; i += 4) sum4 = wasm_f32x4_add(sum4, wasm_v128_load(xr + i));
    float sum = lanes_sum(sum4);
    for (; i < d; i++) sum += xr[i];
    const float mu = sum / (float)d;
    const v128_t mu4 = wasm_f32x4_splat(mu);
    v128_t squares4 = wasm_f32x4_splat(0.0f);
    for (i = 0; i + 4 <= d; i += 4) {
      const v128_t centred = wasm_f32x4_sub(wasm_v128_load(xr + i), mu4);
      squares4 = madd(squares4, centred, centred);
    }
    float squares = lanes_sum(squares4);
    for (; i < d; i++) squares += (xr[i] - mu) * (xr[i] - mu);
    const float inverse = 1.0f / __builtin_sqrtf(squares / (float)d + eps);
    const v128_t inverse4 = wasm_f32x4_splat(inverse);
    for (i = 0; i + 4 <= d; i += 4) {
      const v128_t normed = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + i), mu4), inverse4);
      wasm_v128_store(yr + i, madd(wasm_v128_load(bias + i), normed, wasm_v128_load(gain + i)));
    }
    for (; i < d; i++) yr[i] = (xr[i] - mu) * inverse * gain[i] + bias[i];
    mean[r] = mu;
    rstd[r] = inverse;
  }
}

/** Floats of scratch space layer_norm_backward needs for rows of d: the float64 sums of 2 × d. */
__attribute__((export_name("layer_norm_backward_scratch"))) u32 layer_norm_backward_scratch(u32 d) {
  return 4 * d;
}

/**
 * x, gain, the forward's μ and 1/σ, and dy → dx = (1/σ)·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) with ĝ = dy·gain,
 * x̂ = (x − μ)/σ; dgain = Σ_rows dy·x̂, dbias = Σ_rows dy. `scratch` (8-byte aligned) holds
 * layer_norm_backward_scratch(d) floats.
 */
__attribute__((export_name("layer_norm_backward"))) void layer_norm_backward(
    const float *x, const float *gain, const float *mean, const float *rstd, const float *dy, float *dx,
    float *dgain, float *dbias, float *scratch, u32 rows, u32 d) {
  double *gainSums = (double *)scratch, *biasSums = gainSums + d;
  __builtin_memset(scratch, 0, 2 * d * sizeof(double));
  const float width = (float)d;
  for (u32 r = 0; r < rows; r++) {
    const float *xr = x + r * d, *dyr = dy + r * d;
    float *dxr = dx + r * d;
    const v128_t mu4 = wasm_f32x4_splat(mean[r]), inverse4 = wasm_f32x4_splat(rstd[r]);
    v128_t gradSum4 = wasm_f32x4_splat(0.0f), gradDotNormed4 = gradSum4;
    u32 i = 0;
    for (; i + 4 <= d; i += 4) {
      const v128_t normed = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + i), mu4), inverse4);
      const v128_t g = wasm_v128_load(dyr + i);
      const v128_t grad = wasm_f32x4_mul(g, wasm_v128_load(gain + i));
      gradSum4 = wasm_f32x4_add(gradSum4, grad);
      gradDotNormed4 = madd(gradDotNormed4, grad, normed);
      add_widened(gainSums + i, wasm_f32x4_mul(g, normed));
      add_widened(biasSums + i, g);
    }
    float gradSum = lanes_sum(gradSum4), gradDotNormed = lanes_sum(gradDotNormed4);
    for (; i < d; i++) {
      const float normed = (xr[i] - mean[r]) * rstd[r];
      const float grad = dyr[i] * gain[i];
      gradSum += grad;
      gradDotNormed += grad * normed;
      gainSums[i] += (double)(dyr[i] * normed);
      biasSums[i] += (double)dyr[i];
    }
    const float gradMean = gradSum / width, gradDotNormedMean = gradDotNormed / width;
    const v128_t gradMean4 = wasm_f32x4_splat(gradMean), gradDotNormedMean4 = wasm_f32x4_splat(gradDotNormedMean);
    for (i = 0; i + 4 <= d; i += 4) {
      const v128_t normed = wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(xr + i), mu4), inverse4);
      const v128_t grad = wasm_f32x4_mul(wasm_v128_load(dyr + i), wasm_v128_load(gain + i));
      const v128_t centred = wasm_f32x4_sub(wasm_f32x4_sub(grad, gradMean4), wasm_f32x4_mul(normed, gradDotNormedMean4));
      wasm_v128_store(dxr + i, wasm_f32x4_mul(inverse4, centred));
    }
    for (; i < d; i++) {
      const float normed = (xr[i] - mean[r]) * rstd[r];
      dxr[i] = rstd[r] * (dyr[i] * gain[i] - gradMean - normed * gradDotNormedMean);
    }
  }
  for (u32 i = 0; i < d; i++) {
    dgain[i] = (float)gainSums[i];
    dbias[i] = (float)biasSums[i];
  }
}
