// Helpers shared by imtrain's wasm kernels (the .c files here): SIMD128 products and sums, e^x and
// σ(x), with no libc (the module may own no memory, so nothing here touches the stack or static data).
#pragma once
#include <wasm_simd128.h>

typedef unsigned int u32;

/** y += a·x, four lanes. */
static inline v128_t madd(v128_t y, v128_t a, v128_t x) { return wasm_f32x4_add(y, wasm_f32x4_mul(a, x)); }

/** Σ of a vector's four lanes. */
static inline float lanes_sum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) +
         wasm_f32x4_extract_lane(v, 3);
}

/** Max of a vector's four lanes. */
static inline float lanes_max(v128_t v) {
  const float a = wasm_f32x4_extract_lane(v, 0), b = wasm_f32x4_extract_lane(v, 1);
  const float c = wasm_f32x4_extract_lane(v, 2), d = wasm_f32x4_extract_lane(v, 3);
  const float ab = a > b ? a : b, cd = c > d ? c : d;
  return ab > cd ? ab : cd;
}

/** a · b over n floats. */
static inline float dot(const float *a, const float *b, u32 n) {
  v128_t sum = wasm_f32x4_splat(0.0f);
  u32 c = 0;
  for (; c + 4 <= n; c += 4) sum = madd(sum, wasm_v128_load(a + c), wasm_v128_load(b + c));
  float s = lanes_sum(sum);
  for (; c < n; c++) s += a[c] * b[c];
  return s;
}

/**
 * e^x for x ≤ 0 (softmax's shifted scores), to about 1 ulp: Cephes' expf, x = n·ln 2 + r with ln 2 in
 * two parts, a degree-6 polynomial for e^r, and 2^n put into the exponent bits.
 */
static inline float exp_nonpositive(float x) {
  x = x < -87.0f ? -87.0f : x; // as exp4_nonpositive: e^−87 ≈ 1.6e−38, the smallest it returns
  float n = __builtin_rintf(x * 1.44269504088896341f);
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  union {
    u32 bits;
    float value;
  } scale = {(u32)((int)n + 127) << 23};
  return p * scale.value;
}

/** sums[0..3] += the four lanes of v, widened to float64. */
static inline void add_widened(double *sums, v128_t v) {
  const v128_t low = wasm_f64x2_promote_low_f32x4(v);
  const v128_t high = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1));
  wasm_v128_store(sums, wasm_f64x2_add(wasm_v128_load(sums), low));
  wasm_v128_store(sums + 2, wasm_f64x2_add(wasm_v128_load(sums + 2), high));
}

/** exp_nonpositive on four lanes at once. */
static inline v128_t exp4_nonpositive(v128_t x) {
  x = wasm_f32x4_max(x, wasm_f32x4_splat(-87.0f));
  const v128_t n = wasm_f32x4_nearest(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)));
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500e-4f);
  p = madd(wasm_f32x4_splat(1.3981999507e-3f), p, r);
  p = madd(wasm_f32x4_splat(8.3334519073e-3f), p, r);
  p = madd(wasm_f32x4_splat(4.1665795894e-2f), p, r);
  p = madd(wasm_f32x4_splat(1.6666665459e-1f), p, r);
  p = madd(wasm_f32x4_splat(5.0000001201e-1f), p, r);
  p = wasm_f32x4_add(madd(r, wasm_f32x4_mul(p, r), r), wasm_f32x4_splat(1.0f));
  const v128_t exponent = wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23);
  return wasm_f32x4_mul(p, exponent);
}

/** σ(z) = 1/(1 + e^−z) on four lanes, through e^−|z| (never overflows). */
static inline v128_t sigmoid4(v128_t z) {
  const v128_t e = exp4_nonpositive(wasm_f32x4_neg(wasm_f32x4_abs(z)));
  const v128_t q = wasm_f32x4_div(wasm_f32x4_splat(1.0f), wasm_f32x4_add(wasm_f32x4_splat(1.0f), e));
  // z ≥ 0: 1/(1 + e^−z); z < 0: e^z/(1 + e^z).
  return wasm_v128_bitselect(q, wasm_f32x4_mul(e, q), wasm_f32x4_ge(z, wasm_f32x4_splat(0.0f)));
}

/** σ(z) for one number, as sigmoid4 does it. */
static inline float sigmoid(float z) {
  const float e = exp_nonpositive(z < 0 ? z : -z);
  const float q = 1.0f / (1.0f + e);
  return z >= 0 ? q : e * q;
}
