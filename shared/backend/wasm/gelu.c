// GPT-2's gelu_new, 0.5·x·(1 + tanh u) with u = √(2/π)·(x + 0.044715·x³), computed as x·σ(2u) (the same
// function), forward and backward in one pass each over tfjs-backend-wasm's heap (see attention.c for how
// the module works in tfjs's memory). tfjs runs it as ~6 elementwise kernels forward and ~8 backward.

#include "simd.h"

/** 2√(2/π) and 2√(2/π)·0.044715: z = 2u = x·(A + B·x²), z′ = A + 3B·x². */
#define GELU_A 1.5957691216057308f
#define GELU_B 0.07135481627159036f

/** x [n] → y = x·σ(z) and s = σ(z) (kept for the backward pass). */
__attribute__((export_name("gelu_forward"))) void gelu_forward(const float *x, float *y, float *s, u32 n) {
  const v128_t a = wasm_f32x4_splat(GELU_A), b = wasm_f32x4_splat(GELU_B);
  u32 i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t xs = wasm_v128_load(x + i);
    const v128_t sig = sigmoid4(wasm_f32x4_mul(xs, madd(a, b, wasm_f32x4_mul(xs, xs))));
    wasm_v128_store(s + i, sig);
    wasm_v128_store(y + i, wasm_f32x4_mul(xs, sig));
  }
  for (; i < n; i++) {
    s[i] = sigmoid(x[i] * (GELU_A + GELU_B * x[i] * x[i]));
    y[i] = x[i] * s[i];
  }
}

/** x, s = σ(z) and dy → dx = dy·(s + x·s·(1 − s)·z′). */
__attribute__((export_name("gelu_backward"))) void gelu_backward(const float *x, const float *s, const float *dy,
                                                                 float *dx, u32 n) {
  const v128_t a = wasm_f32x4_splat(GELU_A), b3 = wasm_f32x4_splat(3.0f * GELU_B), one = wasm_f32x4_splat(1.0f);
  u32 i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t xs = wasm_v128_load(x + i), sig = wasm_v128_load(s + i);
    const v128_t slope = madd(a, b3, wasm_f32x4_mul(xs, xs));
    const v128_t sigmoidSlope = wasm_f32x4_mul(sig, wasm_f32x4_sub(one, sig));
    const v128_t local = madd(sig, wasm_f32x4_mul(xs, sigmoidSlope), slope);
    wasm_v128_store(dx + i, wasm_f32x4_mul(wasm_v128_load(dy + i), local));
  }
  for (; i < n; i++) {
    const float slope = GELU_A + 3.0f * GELU_B * x[i] * x[i];
    dx[i] = dy[i] * (s[i] + x[i] * s[i] * (1.0f - s[i]) * slope);
  }
}
