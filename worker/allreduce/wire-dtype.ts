// The float format gradients travel in between ranks (--allreduce-dtype). fp32 sends the floats as they
// are; bf16 and fp16 send 2 bytes a float (half the bytes on the wire), as PyTorch DDP's compression hooks
// do, while every addition stays in fp32: a received chunk is widened to fp32 before it is added. bf16
// keeps fp32's range with 8 bits of mantissa; fp16 keeps 11 bits but flushes below 6e-8 and overflows above
// 65,504 (to ±Infinity, which the step's non-finite check then catches by name).
//
// Written here rather than taken from a package: Node 20 has no Float16Array, and the polyfills convert one
// element at a time through a Proxy; these loops run over every gradient float each step. Rounding is to
// nearest, ties to even, as a hardware conversion does; NaN stays NaN.

import type { WireDtype } from "../../shared/data-plane.js";

export type { WireDtype } from "../../shared/data-plane.js";

/** Bytes one float takes on the wire. */
export function wireBytesPerFloat(dtype: WireDtype): number {
  return dtype === "fp32" ? 4 : 2;
}

/** The fp32 bit pattern → bf16's, rounded to nearest even. */
function bf16Bits(bits: number): number {
  // NaN: keep it a (quiet) NaN instead of letting the rounding carry it into ±Infinity.
  if ((bits & 0x7fffffff) > 0x7f800000) return (bits >>> 16) | 0x40;
  return (bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16;
}

/** The fp32 bit pattern → IEEE binary16's, rounded to nearest even (subnormals included). */
function fp16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa === 0 ? 0 : 0x200 | (mantissa >>> 13));
  const halfExponent = exponent - 127 + 15;
  if (halfExponent >= 0x1f) return sign | 0x7c00;
  if (halfExponent <= 0) {
    // A subnormal half: the 24-bit significand shifted down to units of 2^-24.
    if (halfExponent < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - halfExponent;
    const half = mantissa >>> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    return sign | (rest > halfway || (rest === halfway && (half & 1) === 1) ? half + 1 : half);
  }
  const half = (halfExponent << 10) | (mantissa >>> 13);
  const rest = mantissa & 0x1fff;
  // A carry out of the mantissa steps the exponent, up to Infinity: the right result either way.
  return sign | (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1) ? half + 1 : half);
}

let fp16Table: Float32Array | undefined;
/** Every binary16 pattern's value: widening is a lookup. */
function fp16Values(): Float32Array {
  if (fp16Table !== undefined) return fp16Table;
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exponent = (h >>> 10) & 0x1f;
    const mantissa = h & 0x3ff;
    if (exponent === 0) table[h] = (sign === 0 ? 1 : -1) * mantissa * 2 ** -24;
    else if (exponent === 0x1f) bits[h] = (sign | 0x7f800000 | (mantissa << 13)) >>> 0;
    else bits[h] = (sign | ((exponent - 15 + 127) << 23) | (mantissa << 13)) >>> 0;
  }
  fp16Table = table;
  return table;
}

/** `floats` narrowed to `dtype`: its bytes as sent (fp32: the floats' own memory, not a copy). */
export function narrowFloats(floats: Float32Array, dtype: WireDtype): Uint8Array {
  if (dtype === "fp32") return new Uint8Array(floats.buffer, floats.byteOffset, floats.byteLength);
  const bits = new Uint32Array(floats.buffer, floats.byteOffset, floats.length);
  const narrow = new Uint16Array(floats.length);
  if (dtype === "bf16") for (let i = 0; i < bits.length; i++) narrow[i] = bf16Bits(bits[i]!);
  else for (let i = 0; i < bits.length; i++) narrow[i] = fp16Bits(bits[i]!);
  return new Uint8Array(narrow.buffer);
}

/**
 * Widens the wire bytes of `dtype` into `target` (target.length floats; bytes.length must be that many
 * elements). Reads `bytes` at any alignment.
 */
export function widenInto(target: Float32Array, bytes: Uint8Array, dtype: WireDtype): void {
  if (dtype === "fp32") {
    new Uint8Array(target.buffer, target.byteOffset, target.byteLength).set(bytes);
    return;
  }
  // A decoded message's bytes sit at any offset: read 2-byte elements in place when aligned, else copy once.
  const narrow =
    bytes.byteOffset % 2 === 0
      ? new Uint16Array(bytes.buffer, bytes.byteOffset, target.length)
      : // A copy: a Node Buffer's slice() is a view into its (pooled) memory, not one.
        new Uint16Array(new Uint8Array(bytes).buffer, 0, target.length);
  if (dtype === "bf16") {
    const bits = new Uint32Array(target.buffer, target.byteOffset, target.length);
    for (let i = 0; i < bits.length; i++) bits[i] = narrow[i]! << 16;
  } else {
    const values = fp16Values();
    for (let i = 0; i < target.length; i++) target[i] = values[narrow[i]!]!;
  }
}

/** Rounds `floats` in place to what `dtype` carries, so a value kept here equals the copies sent. */
export function roundToWire(floats: Float32Array, dtype: WireDtype): void {
  if (dtype === "fp32") return;
  widenInto(floats, narrowFloats(floats, dtype), dtype);
}
