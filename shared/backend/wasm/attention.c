// Causal multi-head self-attention, forward and backward, for tfjs-backend-wasm's heap.
//
// Why C: on wasm, tfjs runs attention as ~20 kernels a layer (split, transposes, one 2-D matmul per
// batch entry and head, scale, mask, softmax, and as many again for the gradient), 384 per-head products
// in a d128 step at ~75 µs each, most of it dispatch and XNNPACK packing 128 × 32 matrices. One pass here
// reads q, k and v where the QKV projection left them ([B·T, 3d], head h at columns h·hs) and writes the
// context where the output projection reads it ([B·T, d]), with wasm SIMD128 for the products: each
// product is cut into blocks of 4 rows × 8 columns kept in registers (block_product), and the causal
// triangle is walked in blocks of 4 queries so work above the diagonal is at most a 4 × 4 corner.
//
// Built by shared/backend/wasm/build.sh (clang --target=wasm32, no libc) into a module that imports tfjs's
// memory: every pointer is a byte offset into tfjs's heap, from the tensors' own views. The module must
// own no memory of its own (no data, no stack): the build checks that. So: no arrays on the stack, no
// static data, no libc calls; scratch space comes from the caller, allocated on tfjs's heap.

#include "simd.h"

/** Rows of a block: the causal triangle is walked this many queries (or keys) at a time. */
#define BLOCK 4

/**
 * C = A·B for an M × N block of C (M ≤ 4), K deep: C[m][n] = Σ_k A[m·am + k·ak] · B[k·ldb + n], C's rows
 * ldc apart. A's strides are free (a transposed operand costs nothing), B's rows are contiguous. Four rows
 * × 8 columns of C are 8 SIMD accumulators; each k loads 4 numbers of A and 8 of B.
 */
static void block_product(float *C, u32 ldc, const float *A, u32 am, u32 ak, const float *B, u32 ldb, u32 M,
                          u32 N, u32 K) {
  // Rows past M read row 0 again and are not stored: one code path for every M.
  const float *A0 = A, *A1 = M > 1 ? A + am : A, *A2 = M > 2 ? A + 2 * am : A, *A3 = M > 3 ? A + 3 * am : A;
  u32 n = 0;
  for (; n + 8 <= N; n += 8) {
    v128_t c00 = wasm_f32x4_splat(0), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
           c31 = c00;
    const float *b = B + n;
    for (u32 k = 0; k < K; k++, b += ldb) {
      const v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4);
      const v128_t a0 = wasm_f32x4_splat(A0[k * ak]), a1 = wasm_f32x4_splat(A1[k * ak]);
      const v128_t a2 = wasm_f32x4_splat(A2[k * ak]), a3 = wasm_f32x4_splat(A3[k * ak]);
      c00 = madd(c00, a0, b0), c01 = madd(c01, a0, b1), c10 = madd(c10, a1, b0), c11 = madd(c11, a1, b1);
      c20 = madd(c20, a2, b0), c21 = madd(c21, a2, b1), c30 = madd(c30, a3, b0), c31 = madd(c31, a3, b1);
    }
    float *c = C + n;
    wasm_v128_store(c, c00), wasm_v128_store(c + 4, c01);
    if (M > 1) wasm_v128_store(c + ldc, c10), wasm_v128_store(c + ldc + 4, c11);
    if (M > 2) wasm_v128_store(c + 2 * ldc, c20), wasm_v128_store(c + 2 * ldc + 4, c21);
    if (M > 3) wasm_v128_store(c + 3 * ldc, c30), wasm_v128_store(c + 3 * ldc + 4, c31);
  }
  for (; n + 4 <= N; n += 4) {
    v128_t c0 = wasm_f32x4_splat(0), c1 = c0, c2 = c0, c3 = c0;
    const float *b = B + n;
    for (u32 k = 0; k < K; k++, b += ldb) {
      const v128_t b0 = wasm_v128_load(b);
      c0 = madd(c0, wasm_f32x4_splat(A0[k * ak]), b0), c1 = madd(c1, wasm_f32x4_splat(A1[k * ak]), b0);
      c2 = madd(c2, wasm_f32x4_splat(A2[k * ak]), b0), c3 = madd(c3, wasm_f32x4_splat(A3[k * ak]), b0);
    }
    float *c = C + n;
    wasm_v128_store(c, c0);
    if (M > 1) wasm_v128_store(c + ldc, c1);
    if (M > 2) wasm_v128_store(c + 2 * ldc, c2);
    if (M > 3) wasm_v128_store(c + 3 * ldc, c3);
  }
  for (; n < N; n++) {
    float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
    for (u32 k = 0; k < K; k++) {
      const float b = B[k * ldb + n];
      c0 += A0[k * ak] * b, c1 += A1[k * ak] * b, c2 += A2[k * ak] * b, c3 += A3[k * ak] * b;
    }
    C[n] = c0;
    if (M > 1) C[ldc + n] = c1;
    if (M > 2) C[2 * ldc + n] = c2;
    if (M > 3) C[3 * ldc + n] = c3;
  }
}

/** to [cols, rows] = from [rows, cols]ᵀ, from's rows `stride` apart: a head's keys or values as Bᵀ. */
static void transpose(float *to, const float *from, u32 rows, u32 cols, u32 stride) {
  for (u32 r = 0; r < rows; r++)
    for (u32 c = 0; c < cols; c++) to[c * rows + r] = from[r * stride + c];
}

/** How many rows the block starting at row i has, of T: BLOCK, or fewer at the end. Those rows see the
 * columns [0, i + rows). */
static inline u32 rows_from(u32 i, u32 length) { return length - i < BLOCK ? length - i : BLOCK; }

/**
 * Row p of T scores, of which the first `seen` are a query's (keys 0..i): p ← softmax(scale·p) over
 * those, 0 after them. Four lanes at a time, e^x included.
 */
static void softmax_causal_row(float *p, u32 seen, u32 T, float scale) {
  u32 j = 0;
  v128_t top4 = wasm_f32x4_splat(-3.4e38f);
  for (; j + 4 <= seen; j += 4) top4 = wasm_f32x4_max(top4, wasm_v128_load(p + j));
  float top = lanes_max(top4);
  for (; j < seen; j++) top = p[j] > top ? p[j] : top;
  const v128_t shift = wasm_f32x4_splat(top), scale4 = wasm_f32x4_splat(scale);
  v128_t sum4 = wasm_f32x4_splat(0.0f);
  for (j = 0; j + 4 <= seen; j += 4) {
    const v128_t e = exp4_nonpositive(wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(p + j), shift), scale4));
    wasm_v128_store(p + j, e);
    sum4 = wasm_f32x4_add(sum4, e);
  }
  float sum = lanes_sum(sum4);
  for (; j < seen; j++) {
    p[j] = exp_nonpositive((p[j] - top) * scale);
    sum += p[j];
  }
  const float inverse = 1.0f / sum;
  const v128_t inverse4 = wasm_f32x4_splat(inverse);
  for (j = 0; j + 4 <= seen; j += 4) wasm_v128_store(p + j, wasm_f32x4_mul(wasm_v128_load(p + j), inverse4));
  for (; j < seen; j++) p[j] *= inverse;
  for (; j < T; j++) p[j] = 0.0f;
}

/** Scratch floats attention_forward needs: a head's keys transposed. */
__attribute__((export_name("attention_forward_scratch"))) u32 attention_forward_scratch(u32 length,
                                                                                       u32 headSize) {
  return length * headSize;
}

/**
 * qkv [B·T, 3d] (q, k, v side by side, head h at columns h·hs of each) → context [B·T, d] and the
 * attention weights probs [B·H, T, T] (zero above the diagonal), kept for the backward pass. `scratch`
 * holds attention_forward_scratch(T, hs) floats.
 */
__attribute__((export_name("attention_forward"))) void attention_forward(const float *qkv, float *context,
                                                                         float *probs, float *scratch,
                                                                         u32 batch, u32 length, u32 heads,
                                                                         u32 headSize, float scale) {
  const u32 d = heads * headSize, stride = 3 * d, T = length;
  float *keysT = scratch; // [hs, T]
  for (u32 b = 0; b < batch; b++) {
    for (u32 h = 0; h < heads; h++) {
      const float *Q = qkv + b * T * stride + h * headSize;
      const float *K = Q + d, *V = Q + 2 * d;
      float *O = context + b * T * d + h * headSize;
      float *P = probs + (b * heads + h) * T * T;
      transpose(keysT, K, T, headSize, stride);
      for (u32 i0 = 0; i0 < T; i0 += BLOCK) {
        const u32 M = rows_from(i0, T), end = i0 + M;
        block_product(P + i0 * T, T, Q + i0 * stride, stride, 1, keysT, T, M, end, headSize);
        for (u32 i = i0; i < end; i++) softmax_causal_row(P + i * T, i + 1, T, scale);
        // Columns [0, end) of P: zero above the diagonal, so the corner adds nothing.
        block_product(O + i0 * d, d, P + i0 * T, T, 1, V, stride, M, headSize, end);
      }
    }
  }
}

/** Scratch floats attention_backward needs: a head's dS [T, T] and its values transposed. */
__attribute__((export_name("attention_backward_scratch"))) u32 attention_backward_scratch(u32 length,
                                                                                         u32 headSize) {
  return length * length + length * headSize;
}

/**
 * The gradient of attention_forward: from qkv, probs and context as it left them and dContext [B·T, d],
 * dqkv [B·T, 3d]. dP = dO·Vᵀ, dS = scale·P ⊙ (dP − D) with D the row sums of P ⊙ dP, which equal
 * rowsum(dO ⊙ O) (O = P·V); dQ = dS·K, dK = dSᵀ·Q, dV = Pᵀ·dO. `scratch` holds
 * attention_backward_scratch(T, hs) floats.
 */
__attribute__((export_name("attention_backward"))) void attention_backward(
    const float *qkv, const float *probs, const float *context, const float *dContext, float *dqkv,
    float *scratch, u32 batch, u32 length, u32 heads, u32 headSize, float scale) {
  const u32 d = heads * headSize, stride = 3 * d, T = length;
  float *dS = scratch;                // [T, T]; row i valid in the columns its block saw
  float *valuesT = scratch + T * T;   // [hs, T]
  for (u32 b = 0; b < batch; b++) {
    for (u32 h = 0; h < heads; h++) {
      const float *Q = qkv + b * T * stride + h * headSize;
      const float *K = Q + d, *V = Q + 2 * d;
      float *dQ = dqkv + b * T * stride + h * headSize;
      float *dK = dQ + d, *dV = dQ + 2 * d;
      const float *O = context + b * T * d + h * headSize;
      const float *dO = dContext + b * T * d + h * headSize;
      const float *P = probs + (b * heads + h) * T * T;
      transpose(valuesT, V, T, headSize, stride);
      for (u32 i0 = 0; i0 < T; i0 += BLOCK) {
        const u32 M = rows_from(i0, T), end = i0 + M;
        block_product(dS + i0 * T, T, dO + i0 * d, d, 1, valuesT, T, M, end, headSize);
        for (u32 i = i0; i < end; i++) {
          const float D = dot(dO + i * d, O + i * d, headSize);
          float *ds = dS + i * T;
          const float *p = P + i * T;
          // Above the diagonal p is 0, so dS is too: the block's corner is exact zeros.
          for (u32 j = 0; j < end; j++) ds[j] = p[j] * (ds[j] - D) * scale;
        }
        block_product(dQ + i0 * stride, stride, dS + i0 * T, T, 1, K, stride, M, headSize, end);
      }
      // Key j's gradients sum over the queries i ≥ j; rows i ≥ j0 of dS hold columns [j0, j0 + 4).
      for (u32 j0 = 0; j0 < T; j0 += BLOCK) {
        const u32 M = rows_from(j0, T), deep = T - j0;
        block_product(dK + j0 * stride, stride, dS + j0 * T + j0, 1, T, Q + j0 * stride, stride, M, headSize,
                      deep);
        block_product(dV + j0 * stride, stride, P + j0 * T + j0, 1, T, dO + j0 * d, d, M, headSize, deep);
      }
    }
  }
}
