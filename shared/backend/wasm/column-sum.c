// The sum over rows of each column of x [rows, cols] (a bias's gradient), over tfjs-backend-wasm's heap
// (see attention.c for how the module works in tfjs's memory): wasm's own sum over an axis other than the
// last transposes first. Four rows at a time in float32 lanes, added into float64 sums.

#include "simd.h"

/** Floats of scratch space column_sum needs: float64 sums of `cols`. */
__attribute__((export_name("column_sum_scratch"))) u32 column_sum_scratch(u32 cols) { return 2 * cols; }

/** out [cols] = Σ_rows x [rows, cols]; `scratch` (8-byte aligned) holds column_sum_scratch(cols) floats. */
__attribute__((export_name("column_sum"))) void column_sum(const float *x, float *out, float *scratch, u32 rows,
                                                           u32 cols) {
  double *sums = (double *)scratch;
  __builtin_memset(sums, 0, cols * sizeof(double));
  u32 r = 0;
  for (; r + 4 <= rows; r += 4) {
    const float *a = x + r * cols, *b = a + cols, *c = b + cols, *d = c + cols;
    u32 i = 0;
    for (; i + 4 <= cols; i += 4) {
      const v128_t ab = wasm_f32x4_add(wasm_v128_load(a + i), wasm_v128_load(b + i));
      const v128_t cd = wasm_f32x4_add(wasm_v128_load(c + i), wasm_v128_load(d + i));
      add_widened(sums + i, wasm_f32x4_add(ab, cd));
    }
    for (; i < cols; i++) sums[i] += (double)((a[i] + b[i]) + (c[i] + d[i]));
  }
  for (; r < rows; r++)
    for (u32 i = 0; i < cols; i++) sums[i] += (double)x[r * cols + i];
  for (u32 i = 0; i < cols; i++) out[i] = (float)sums[i];
}
