// AdamW's update of one parameter in one pass over tfjs-backend-wasm's heap (see attention.c for how the
// module works in tfjs's memory), where tfjs composes ~12 elementwise kernels: decoupled weight decay,
// bias-corrected moments, in float32 as PyTorch's AdamW computes it.

#include "simd.h"

/**
 * param, m, v, g [n] → param′, m′, v′: m′ = β1·m + (1 − β1)·g, v′ = β2·v + (1 − β2)·g²,
 * param′ = param·(1 − decay) − (lr/c1)·m′/(√(v′/c2) + ε), with c1, c2 = 1 − β^t and decay = lr·weight decay.
 */
__attribute__((export_name("adamw_update"))) void adamw_update(const float *param, const float *m, const float *v,
                                                               const float *g, float *newParam, float *newM,
                                                               float *newV, u32 n, float beta1, float beta2,
                                                               float epsilon, float correction1,
                                                               float correction2, float lr, float decay) {
  const float keep1 = 1.0f - beta1, keep2 = 1.0f - beta2, shrink = 1.0f - decay;
  const float step = lr / correction1, inverse2 = 1.0f / correction2;
  const v128_t b1 = wasm_f32x4_splat(beta1), b2 = wasm_f32x4_splat(beta2), k1 = wasm_f32x4_splat(keep1),
               k2 = wasm_f32x4_splat(keep2), shrink4 = wasm_f32x4_splat(shrink), step4 = wasm_f32x4_splat(step),
               inverse4 = wasm_f32x4_splat(inverse2), eps4 = wasm_f32x4_splat(epsilon);
  u32 i = 0;
  for (; i + 4 <= n; i += 4) {
    const v128_t grad = wasm_v128_load(g + i);
    const v128_t moment1 = madd(wasm_f32x4_mul(b1, wasm_v128_load(m + i)), k1, grad);
    const v128_t moment2 = madd(wasm_f32x4_mul(b2, wasm_v128_load(v + i)), k2, wasm_f32x4_mul(grad, grad));
    const v128_t denominator = wasm_f32x4_add(wasm_f32x4_sqrt(wasm_f32x4_mul(moment2, inverse4)), eps4);
    const v128_t update = wasm_f32x4_div(wasm_f32x4_mul(step4, moment1), denominator);
    wasm_v128_store(newParam + i, wasm_f32x4_sub(wasm_f32x4_mul(wasm_v128_load(param + i), shrink4), update));
    wasm_v128_store(newM + i, moment1);
    wasm_v128_store(newV + i, moment2);
  }
  for (; i < n; i++) {
    const float moment1 = beta1 * m[i] + keep1 * g[i];
    const float moment2 = beta2 * v[i] + keep2 * g[i] * g[i];
    newParam[i] = param[i] * shrink - (step * moment1) / (__builtin_sqrtf(moment2 * inverse2) + epsilon);
    newM[i] = moment1;
    newV[i] = moment2;
  }
}
