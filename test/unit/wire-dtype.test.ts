import { test } from "node:test";
import assert from "node:assert/strict";
import { narrowFloats, roundToWire, widenInto, type WireDtype } from "../../worker/allreduce/wire-dtype.js";

/** The 16-bit pattern `dtype` sends for `value`. */
function bitsOf(value: number, dtype: WireDtype): number {
  const bytes = narrowFloats(Float32Array.of(value), dtype);
  return new Uint16Array(bytes.buffer, bytes.byteOffset, 1)[0]!;
}

function widen(bits: number, dtype: WireDtype): number {
  const target = new Float32Array(1);
  widenInto(target, new Uint8Array(Uint16Array.of(bits).buffer), dtype);
  return target[0]!;
}

test("wire dtype - fp16 patterns of hand-checked values (IEEE 754 binary16, round to nearest even)", () => {
  const cases: [number, number][] = [
    [0, 0x0000],
    [-0, 0x8000],
    [1, 0x3c00],
    [-2, 0xc000],
    [0.1, 0x2e66], // 0.0999755859375
    [1 / 3, 0x3555],
    [65504, 0x7bff], // the largest finite half
    [65519, 0x7bff], // below the midpoint to 65536: rounds down
    [65520, 0x7c00], // the midpoint: ties to even, which is Infinity
    [1e6, 0x7c00],
    [-Infinity, 0xfc00],
    [2 ** -14, 0x0400], // the smallest normal
    [2 ** -24, 0x0001], // the smallest subnormal
    [3 * 2 ** -25, 0x0002], // a tie between subnormals 1 and 2: to even
    [2 ** -25, 0x0000], // a tie between 0 and 2^-24: to even, 0
    [1.5 * 2 ** -25, 0x0001],
    [1 + 2 ** -11, 0x3c00], // a tie above 1: to even (1)
    [1 + 3 * 2 ** -11, 0x3c02], // a tie above 1 + 2^-10: to even (1 + 2^-9)
  ];
  for (const [value, bits] of cases)
    assert.equal(bitsOf(value, "fp16").toString(16), bits.toString(16), `fp16 of ${value}`);
  assert.ok(Number.isNaN(widen(bitsOf(NaN, "fp16"), "fp16")));
});

test("wire dtype - bf16 patterns: fp32's top 16 bits, rounded to nearest even; NaN stays NaN", () => {
  const cases: [number, number][] = [
    [1, 0x3f80],
    [-2, 0xc000],
    [1 + 2 ** -8, 0x3f80], // a tie: to even
    [1 + 3 * 2 ** -8, 0x3f82], // a tie: to even, upwards
    [1 + 2 ** -8 + 2 ** -20, 0x3f81], // above the tie
    [3.4028234663852886e38, 0x7f80], // fp32's largest rounds to Infinity
    [Infinity, 0x7f80],
    [1e-40, 0x0001], // fp32 subnormals stay subnormals
  ];
  for (const [value, bits] of cases)
    assert.equal(bitsOf(value, "bf16").toString(16), bits.toString(16), `bf16 of ${value}`);
  const nan = bitsOf(NaN, "bf16");
  assert.ok(Number.isNaN(widen(nan, "bf16")), `NaN → ${nan.toString(16)}`);
});

test("wire dtype - every finite 16-bit pattern widens to a float that narrows back to it", () => {
  for (const dtype of ["bf16", "fp16"] as const) {
    const patterns = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const floats = new Float32Array(65536);
    widenInto(floats, new Uint8Array(patterns.buffer), dtype);
    const back = new Uint16Array(narrowFloats(floats, dtype).buffer);
    for (let i = 0; i < 65536; i++) {
      if (Number.isNaN(floats[i])) continue;
      if (back[i] !== i) assert.fail(`${dtype} ${i.toString(16)} → ${floats[i]} → ${back[i]!.toString(16)}`);
    }
  }
});

test("wire dtype - widening reads bytes at an odd offset, from a Uint8Array or a pooled Buffer; fp32 passes the floats through unchanged", () => {
  const values = Float32Array.of(1.5, -0.25, 3e-3, 7);
  for (const dtype of ["fp32", "bf16", "fp16"] as const) {
    const narrow = narrowFloats(values, dtype);
    const shifted = new Uint8Array(narrow.length + 1);
    shifted.set(narrow, 1);
    const expected = Float32Array.from(values);
    roundToWire(expected, dtype);
    // A decoded message's bytes: a Uint8Array, or a Node Buffer inside a larger pooled allocation.
    const pooled = Buffer.from(shifted);
    for (const bytes of [
      shifted.subarray(1),
      pooled.subarray(1),
      Buffer.concat([pooled, pooled]).subarray(1, narrow.length + 1),
    ]) {
      const target = new Float32Array(values.length);
      widenInto(target, bytes, dtype);
      assert.deepEqual(
        target,
        expected,
        `${dtype} from a ${bytes.constructor.name} at offset ${bytes.byteOffset}`,
      );
    }
  }
  const kept = Float32Array.of(0.1, 1 / 3);
  roundToWire(kept, "fp32");
  assert.deepEqual(kept, Float32Array.of(0.1, 1 / 3));
});
