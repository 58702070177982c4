import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { CheckpointError } from "../../shared/errors.js";
import {
  bfloat16ToFloat32,
  float16ToFloat32,
  readSafetensors,
  writeSafetensors,
  type HostTensor,
} from "../../shared/model/safetensors.js";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "imtrain-safetensors-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

interface RawTensor {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly bytes: Uint8Array;
}

/** Builds a safetensors file by hand, straight from the format description, independent of the writer. */
function buildFile(tensors: Record<string, RawTensor>, extraHeader: Record<string, unknown> = {}): Buffer {
  const header: Record<string, unknown> = { ...extraHeader };
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.byteLength] };
    chunks.push(t.bytes);
    offset += t.bytes.byteLength;
  }
  return withHeader(header, Buffer.concat(chunks));
}

function withHeader(header: unknown, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(json.byteLength));
  return Buffer.concat([length, json, data]);
}

function u16le(values: readonly number[]): Uint8Array {
  const out = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => out.writeUInt16LE(v, i * 2));
  return out;
}

async function assertRejectsWithPath(path: string, pattern: RegExp): Promise<void> {
  await assert.rejects(readSafetensors(path), (err: unknown) => {
    assert.ok(err instanceof CheckpointError, `expected CheckpointError, got ${String(err)}`);
    assert.ok(err.message.includes(path), `message should name the file: ${err.message}`);
    assert.match(err.message, pattern);
    return true;
  });
}

function sampleTensors(): Map<string, HostTensor> {
  return new Map<string, HostTensor>([
    ["transformer.h.0.mlp.c_fc.weight", { shape: [2, 3], data: new Float32Array([1, -2, 3.5, 0, 1e-8, -7]) }],
    ["scale", { shape: [], data: new Float32Array([0.25]) }],
    ["a.bias", { shape: [4], data: new Float32Array([NaN, Infinity, -Infinity, -0]) }],
    ["empty", { shape: [0, 5], data: new Float32Array(0) }],
  ]);
}

void test("round trip preserves tensors, scalar shapes, dotted names and metadata", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    const tensors = sampleTensors();
    await writeSafetensors(path, tensors, { format: "pt", step: "42" });
    const loaded = await readSafetensors(path);
    assert.deepEqual(loaded.metadata, { format: "pt", step: "42" });
    assert.deepEqual([...loaded.tensors.keys()].sort(), [...tensors.keys()].sort());
    for (const [name, expected] of tensors) {
      const actual = loaded.tensors.get(name);
      assert.ok(actual, name);
      assert.deepEqual(actual.shape, expected.shape, name);
      // deepEqual on typed arrays uses Object.is, so NaN and -0 are compared exactly.
      assert.deepEqual(actual.data, expected.data, name);
    }
    assert.deepEqual(await readdir(dir), ["model.safetensors"], "the .tmp file is renamed away");
  });
});

void test("written header is 8-byte aligned, sorted, and announced by its length prefix", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "model.safetensors");
    await writeSafetensors(path, sampleTensors());
    const bytes = await readFile(path);
    const length = Number(bytes.readBigUInt64LE(0));
    assert.equal(length % 8, 0);
    const header = JSON.parse(bytes.subarray(8, 8 + length).toString("utf8")) as Record<string, unknown>;
    assert.deepEqual(Object.keys(header), ["a.bias", "empty", "scale", "transformer.h.0.mlp.c_fc.weight"]);
    assert.equal(bytes.byteLength, 8 + length + (4 + 0 + 1 + 6) * 4);
    assert.deepEqual((await readSafetensors(path)).metadata, {});
  });
});

void test("writer rejects a shape that does not match the data length", async () => {
  await withTempDir(async (dir) => {
    const bad = new Map<string, HostTensor>([["w", { shape: [2, 2], data: new Float32Array(3) }]]);
    await assert.rejects(writeSafetensors(join(dir, "bad.safetensors"), bad), /4 elements but data has 3/);
  });
});

void test("float16 bits decode to the right values, including subnormals, inf and nan", () => {
  assert.equal(float16ToFloat32(0x3c00), 1);
  assert.equal(float16ToFloat32(0xc100), -2.5);
  assert.equal(float16ToFloat32(0x7bff), 65504);
  assert.equal(float16ToFloat32(0x0001), 2 ** -24);
  assert.equal(float16ToFloat32(0x03ff), 1023 * 2 ** -24);
  assert.equal(float16ToFloat32(0x0400), 2 ** -14);
  assert.ok(Object.is(float16ToFloat32(0x8000), -0));
  assert.equal(float16ToFloat32(0x7c00), Infinity);
  assert.equal(float16ToFloat32(0xfc00), -Infinity);
  assert.ok(Number.isNaN(float16ToFloat32(0x7e00)));
});

void test("bfloat16 bits decode to the top half of a float32", () => {
  assert.equal(bfloat16ToFloat32(0x3f80), 1);
  assert.equal(bfloat16ToFloat32(0xc020), -2.5);
  assert.equal(bfloat16ToFloat32(0x0001), 2 ** -133);
  assert.equal(bfloat16ToFloat32(0x7f80), Infinity);
  assert.ok(Number.isNaN(bfloat16ToFloat32(0x7fc0)));
});

void test("hand-built F16, BF16 and F64 files decode to float32", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "half.safetensors");
    const f64 = Buffer.alloc(16);
    f64.writeDoubleLE(0.5, 0);
    f64.writeDoubleLE(-3, 8);
    // The odd-length U8 tensor first puts the half tensors at odd file offsets, which must still decode.
    const file = buildFile(
      {
        "h.0.attn.bias": { dtype: "U8", shape: [1, 1, 1], bytes: new Uint8Array([1]) },
        half: { dtype: "F16", shape: [2, 2], bytes: u16le([0x3c00, 0xc100, 0x7bff, 0x0001]) },
        brain: { dtype: "BF16", shape: [3], bytes: u16le([0x3f80, 0xc020, 0x4780]) },
        double: { dtype: "F64", shape: [2], bytes: f64 },
      },
      { __metadata__: { format: "pt" } },
    );
    await writeFile(path, file);
    const { tensors, metadata } = await readSafetensors(path);
    assert.deepEqual(metadata, { format: "pt" });
    assert.deepEqual(tensors.get("half"), {
      shape: [2, 2],
      data: new Float32Array([1, -2.5, 65504, 2 ** -24]),
    });
    assert.deepEqual(tensors.get("brain"), { shape: [3], data: new Float32Array([1, -2.5, 65536]) });
    assert.deepEqual(tensors.get("double"), { shape: [2], data: new Float32Array([0.5, -3]) });
    for (const t of tensors.values()) assert.equal(t.data.byteOffset % 4, 0);
  });
});

void test("old GPT-2 attention mask buffers of non-float dtypes are skipped", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "gpt2.safetensors");
    const file = buildFile({
      "h.0.attn.bias": { dtype: "BOOL", shape: [1, 1, 2, 2], bytes: new Uint8Array([1, 0, 1, 1]) },
      "h.0.attn.masked_bias": { dtype: "U8", shape: [], bytes: new Uint8Array([0]) },
      "h.0.ln_1.weight": { dtype: "F32", shape: [1], bytes: new Uint8Array(new Float32Array([2]).buffer) },
    });
    await writeFile(path, file);
    const { tensors } = await readSafetensors(path);
    assert.deepEqual([...tensors.keys()], ["h.0.ln_1.weight"]);
  });
});

void test("unsupported dtypes outside attention buffers are rejected with name and dtype", async () => {
  await withTempDir(async (dir) => {
    const path = join(dir, "ints.safetensors");
    await writeFile(path, buildFile({ ids: { dtype: "I64", shape: [1], bytes: new Uint8Array(8) } }));
    await assertRejectsWithPath(path, /"ids" has dtype I64/);
  });
});

void test("a truncated file is rejected with the path in the message", async () => {
  await withTempDir(async (dir) => {
    const full = join(dir, "full.safetensors");
    await writeSafetensors(full, sampleTensors());
    const bytes = await readFile(full);
    const cutData = join(dir, "cut-data.safetensors");
    await writeFile(cutData, bytes.subarray(0, bytes.byteLength - 3));
    await assertRejectsWithPath(cutData, /outside the \d+-byte data buffer/);
    const cutPrefix = join(dir, "cut-prefix.safetensors");
    await writeFile(cutPrefix, bytes.subarray(0, 5));
    await assertRejectsWithPath(cutPrefix, /too short/);
  });
});

void test("a header length beyond the file or over the size limit is rejected", async () => {
  await withTempDir(async (dir) => {
    const beyond = join(dir, "beyond.safetensors");
    const prefix = Buffer.alloc(16, 0x20);
    prefix.writeBigUInt64LE(1000n, 0);
    await writeFile(beyond, prefix);
    await assertRejectsWithPath(beyond, /runs past the end of the file/);
    const huge = join(dir, "huge.safetensors");
    prefix.writeBigUInt64LE(2n ** 63n, 0);
    await writeFile(huge, prefix);
    await assertRejectsWithPath(huge, /exceeds the \d+-byte limit/);
  });
});

void test("hostile headers are rejected: bad JSON, out-of-range, overlapping or mis-sized offsets, bad dims", async () => {
  await withTempDir(async (dir) => {
    const cases: [string, Buffer, RegExp][] = [
      [
        "json",
        Buffer.concat([Buffer.from([4, 0, 0, 0, 0, 0, 0, 0]), Buffer.from("{oop")]),
        /not valid UTF-8 JSON/,
      ],
      ["array", withHeader([1, 2], new Uint8Array(0)), /must be a JSON object/],
      [
        "range",
        withHeader({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, new Uint8Array(4)),
        /outside the 4-byte data buffer/,
      ],
      [
        "overlap",
        withHeader(
          {
            a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
            b: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
          },
          new Uint8Array(12),
        ),
        /overlap/,
      ],
      [
        "size",
        withHeader({ w: { dtype: "F16", shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8)),
        /span 8 bytes .* needs 6/,
      ],
      [
        "negative",
        withHeader({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, new Uint8Array(0)),
        /not a non-negative integer/,
      ],
      [
        "fraction",
        withHeader({ w: { dtype: "F32", shape: [1.5], data_offsets: [0, 6] } }, new Uint8Array(6)),
        /not a non-negative integer/,
      ],
      [
        "metadata",
        withHeader({ __metadata__: { step: 3 } }, new Uint8Array(0)),
        /__metadata__\.step must be a string/,
      ],
    ];
    for (const [name, bytes, pattern] of cases) {
      const path = join(dir, `${name}.safetensors`);
      await writeFile(path, bytes);
      await assertRejectsWithPath(path, pattern);
    }
  });
});

void test("a missing file is a CheckpointError naming the path", async () => {
  await withTempDir(async (dir) => {
    await assertRejectsWithPath(join(dir, "absent.safetensors"), /cannot read/);
  });
});
