// Reader and writer for the safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// header, then the raw little-endian data buffer. Checkpoints come from the internet, so every header field
// is checked before any byte is trusted; a bad file is a CheckpointError the user can act on.

import { open, readFile, rename, rm } from "node:fs/promises";

import { CheckpointError } from "../errors.js";

export interface HostTensor {
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** A real header is a few hundred KB; anything larger is corrupt or hostile and would only waste memory. */
const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const METADATA_KEY = "__metadata__";

/** Bytes per element of every dtype the format defines, so offsets of skipped tensors can be checked too. */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
};

const DECODED_DTYPES = new Set(["F64", "F32", "F16", "BF16"]);

/** Old GPT-2 checkpoints store the causal mask as a buffer; we rebuild it, so its dtype does not matter. */
function isSkippableBuffer(name: string): boolean {
  return name.endsWith(".attn.bias") || name.endsWith(".attn.masked_bias");
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

// Scratch pair for reinterpreting 32 bits as a float without allocating.
const scratchU32 = new Uint32Array(1);
const scratchF32 = new Float32Array(scratchU32.buffer);

/** IEEE 754 half precision bits (low 16 bits of `bits`) to a number, including subnormals, inf and nan. */
export function float16ToFloat32(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >>> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

/** bfloat16 bits (low 16 bits of `bits`) to a number: they are the top half of a float32. */
export function bfloat16ToFloat32(bits: number): number {
  scratchU32[0] = (bits & 0xffff) << 16;
  return scratchF32[0] ?? NaN;
}

// Built on first F16 load: a table lookup is much faster than the branches above for 100M+ elements.
let float16Table: Float32Array | undefined;

function getFloat16Table(): Float32Array {
  if (float16Table === undefined) {
    float16Table = new Float32Array(65536);
    for (let i = 0; i < 65536; i++) float16Table[i] = float16ToFloat32(i);
  }
  return float16Table;
}

interface HeaderEntry {
  readonly name: string;
  readonly dtype: string;
  readonly shape: number[];
  readonly begin: number;
  readonly end: number;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function parseEntry(path: string, name: string, raw: unknown, dataBytes: number): HeaderEntry {
  const fail = (reason: string): never => {
    throw new CheckpointError(path, `tensor ${JSON.stringify(name)}: ${reason}`);
  };
  if (!isPlainObject(raw)) return fail(`header entry must be an object, got ${describe(raw)}`);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== "string") return fail(`dtype must be a string, got ${describe(dtype)}`);
  if (!Array.isArray(shape)) return fail(`shape must be an array, got ${describe(shape)}`);
  const dims: number[] = [];
  for (const dim of shape) {
    if (typeof dim !== "number" || !Number.isSafeInteger(dim) || dim < 0) {
      return fail(`shape ${describe(shape)} has a dimension that is not a non-negative integer`);
    }
    dims.push(dim);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2) {
    return fail(`data_offsets must be [begin, end], got ${describe(offsets)}`);
  }
  const [begin, end] = offsets as unknown[];
  if (
    typeof begin !== "number" ||
    typeof end !== "number" ||
    !Number.isSafeInteger(begin) ||
    !Number.isSafeInteger(end) ||
    begin < 0 ||
    end < begin
  ) {
    return fail(`data_offsets ${describe(offsets)} must be integers with 0 <= begin <= end`);
  }
  if (end > dataBytes) {
    return fail(`data_offsets [${begin}, ${end}] lie outside the ${dataBytes}-byte data buffer`);
  }
  const elementBytes = DTYPE_BYTES[dtype];
  if (elementBytes !== undefined) {
    const elements = dims.reduce((product, dim) => product * dim, 1);
    const expected = elements * elementBytes;
    if (!Number.isSafeInteger(expected) || expected !== end - begin) {
      return fail(
        `data_offsets [${begin}, ${end}] span ${end - begin} bytes but shape ${describe(dims)} of ${dtype} ` +
          `needs ${expected}`,
      );
    }
  }
  return { name, dtype, shape: dims, begin, end };
}

function parseMetadata(path: string, raw: unknown): Record<string, string> {
  if (!isPlainObject(raw)) throw new CheckpointError(path, `${METADATA_KEY} must be an object of strings`);
  const pairs: [string, string][] = [];
  for (const [key, value] of Object.entries(raw)) {
    if (typeof value !== "string") {
      throw new CheckpointError(path, `${METADATA_KEY}.${key} must be a string, got ${describe(value)}`);
    }
    pairs.push([key, value]);
  }
  // fromEntries defines own properties, so a "__proto__" key stays data rather than touching the prototype.
  return Object.fromEntries(pairs);
}

function checkNoOverlap(path: string, entries: readonly HeaderEntry[]): void {
  const ranges = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const prev = ranges[i - 1];
    const cur = ranges[i];
    if (prev !== undefined && cur !== undefined && cur.begin < prev.end) {
      throw new CheckpointError(
        path,
        `tensors ${JSON.stringify(prev.name)} [${prev.begin}, ${prev.end}] and ` +
          `${JSON.stringify(cur.name)} [${cur.begin}, ${cur.end}] overlap in the data buffer`,
      );
    }
  }
}

/** Decodes one tensor's bytes into a fresh, aligned Float32Array (never a view into the file buffer). */
function decode(entry: HeaderEntry, bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (entry.dtype) {
    case "F32": {
      const out = new Float32Array(bytes.byteLength / 4);
      if (LITTLE_ENDIAN_HOST) new Uint8Array(out.buffer).set(bytes);
      else for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
      return out;
    }
    case "F64": {
      const out = new Float32Array(bytes.byteLength / 8);
      for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(i * 8, true);
      return out;
    }
    case "F16": {
      const table = getFloat16Table();
      const out = new Float32Array(bytes.byteLength / 2);
      for (let i = 0; i < out.length; i++) out[i] = table[view.getUint16(i * 2, true)] ?? NaN;
      return out;
    }
    case "BF16": {
      const out = new Float32Array(bytes.byteLength / 2);
      // Native-endian reinterpretation is fine: the u32 and f32 views share the host's byte order.
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < out.length; i++) bits[i] = view.getUint16(i * 2, true) << 16;
      return out;
    }
    default:
      throw new Error(`decode called with undecodable dtype ${entry.dtype}`);
  }
}

/**
 * Reads a safetensors file into float32 host tensors. F64/F32/F16/BF16 are converted to float32; other dtypes
 * are skipped for old GPT-2 attention-mask buffers and rejected elsewhere.
 */
export async function readSafetensors(
  path: string,
): Promise<{ tensors: Map<string, HostTensor>; metadata: Record<string, string> }> {
  let file: Buffer;
  try {
    file = await readFile(path);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new CheckpointError(path, `cannot read safetensors file: ${reason}`, { cause: err });
  }
  if (file.byteLength < 8) {
    throw new CheckpointError(
      path,
      `file is ${file.byteLength} bytes, too short for the 8-byte header length`,
    );
  }
  const headerLength = file.readBigUInt64LE(0);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(
      path,
      `header length ${headerLength} exceeds the ${MAX_HEADER_BYTES}-byte limit`,
    );
  }
  if (headerLength > BigInt(file.byteLength - 8)) {
    throw new CheckpointError(
      path,
      `header length ${headerLength} runs past the end of the file (${file.byteLength} bytes); is it truncated?`,
    );
  }
  const headerEnd = 8 + Number(headerLength);
  let header: unknown;
  try {
    const text = new TextDecoder("utf-8", { fatal: true }).decode(file.subarray(8, headerEnd));
    header = JSON.parse(text);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new CheckpointError(path, `header is not valid UTF-8 JSON: ${reason}`, { cause: err });
  }
  if (!isPlainObject(header)) throw new CheckpointError(path, "header must be a JSON object");

  const data = file.subarray(headerEnd);
  let metadata: Record<string, string> = {};
  const entries: HeaderEntry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) metadata = parseMetadata(path, raw);
    else entries.push(parseEntry(path, name, raw, data.byteLength));
  }
  checkNoOverlap(path, entries);

  const tensors = new Map<string, HostTensor>();
  for (const entry of entries) {
    if (!DECODED_DTYPES.has(entry.dtype)) {
      if (isSkippableBuffer(entry.name)) continue;
      throw new CheckpointError(
        path,
        `tensor ${JSON.stringify(entry.name)} has dtype ${entry.dtype}; only F32, F16, BF16 and F64 are supported`,
      );
    }
    tensors.set(entry.name, {
      shape: entry.shape,
      data: decode(entry, data.subarray(entry.begin, entry.end)),
    });
  }
  return { tensors, metadata };
}

/** Little-endian bytes of a float32 array; a zero-copy view on little-endian hosts. */
function float32Bytes(data: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN_HOST) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const out = new Uint8Array(data.byteLength);
  const view = new DataView(out.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(i * 4, data[i] ?? NaN, true);
  return out;
}

/**
 * Writes tensors as F32 safetensors, names sorted, header space-padded to 8 bytes. The bytes go to
 * `path + ".tmp"` and are fsynced before a rename, so a crash leaves either the old file or the new one.
 */
export async function writeSafetensors(
  path: string,
  tensors: ReadonlyMap<string, HostTensor>,
  metadata?: Record<string, string>,
): Promise<void> {
  const names = [...tensors.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header[METADATA_KEY] = { ...metadata };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const name of names) {
    const tensor = tensors.get(name);
    if (tensor === undefined) continue;
    if (name === METADATA_KEY) throw new Error(`tensor name ${METADATA_KEY} is reserved by safetensors`);
    const elements = tensor.shape.reduce((product, dim) => {
      if (!Number.isSafeInteger(dim) || dim < 0) throw new Error(`tensor ${name}: bad dimension ${dim}`);
      return product * dim;
    }, 1);
    if (elements !== tensor.data.length) {
      throw new Error(
        `tensor ${name}: shape [${tensor.shape.join(", ")}] has ${elements} elements but data has ` +
          `${tensor.data.length}`,
      );
    }
    const bytes = float32Bytes(tensor.data);
    // Defined as own properties so that names such as "__proto__" survive into the JSON.
    Object.defineProperty(header, name, {
      value: { dtype: "F32", shape: [...tensor.shape], data_offsets: [offset, offset + bytes.byteLength] },
      enumerable: true,
      writable: true,
      configurable: true,
    });
    chunks.push(bytes);
    offset += bytes.byteLength;
  }

  const json = Buffer.from(JSON.stringify(header), "utf8");
  const padded = Math.ceil(json.byteLength / 8) * 8;
  const prefix = Buffer.alloc(8 + padded, 0x20);
  prefix.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(prefix, 8);

  const tmp = `${path}.tmp`;
  const handle = await open(tmp, "w");
  try {
    let position = 0;
    for (const chunk of [prefix, ...chunks]) {
      // write() may be partial, so loop until the whole chunk is on disk.
      let done = 0;
      while (done < chunk.byteLength) {
        const { bytesWritten } = await handle.write(chunk, done, chunk.byteLength - done, position + done);
        done += bytesWritten;
      }
      position += chunk.byteLength;
    }
    await handle.sync();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(tmp, { force: true }).catch(() => undefined);
    throw err;
  }
  await handle.close();
  await rename(tmp, path);
}
