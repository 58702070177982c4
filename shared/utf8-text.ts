// Files we read as text (data, config) must be UTF-8. Anything else is named in words, never echoed: a raw
// UTF-16 or binary byte in an error line garbles the terminal and tells the user nothing.
import { isUtf8 } from "node:buffer";

/** Why some bytes are not UTF-8 text, and the 1-based line where that shows. */
export interface NotUtf8 {
  readonly line: number;
  readonly reason: string;
}

const CONVERT = "convert it to UTF-8 (e.g. iconv -f UTF-16 -t UTF-8)";

function startsWith(bytes: Uint8Array, prefix: readonly number[]): boolean {
  return prefix.every((byte, i) => bytes[i] === byte);
}

function lineAt(bytes: Uint8Array, offset: number): number {
  let line = 1;
  for (let i = 0; i < offset; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

/** Offset of the first byte that does not belong to a well-formed UTF-8 sequence, or -1. */
function firstInvalidByte(bytes: Uint8Array): number {
  const byteAt = (i: number) => bytes[i] ?? -1;
  for (let i = 0; i < bytes.length;) {
    const lead = byteAt(i);
    if (lead < 0x80) {
      i++;
      continue;
    }
    // Continuation bytes are 0x80..0xBF; the second byte's range also rules out overlongs and surrogates.
    let length: number;
    let secondMin = 0x80;
    let secondMax = 0xbf;
    if (lead >= 0xc2 && lead <= 0xdf) length = 2;
    else if (lead >= 0xe0 && lead <= 0xef) {
      length = 3;
      if (lead === 0xe0) secondMin = 0xa0;
      if (lead === 0xed) secondMax = 0x9f;
    } else if (lead >= 0xf0 && lead <= 0xf4) {
      length = 4;
      if (lead === 0xf0) secondMin = 0x90;
      if (lead === 0xf4) secondMax = 0x8f;
    } else return i;
    const second = byteAt(i + 1);
    if (second < secondMin || second > secondMax) return i;
    for (let k = 2; k < length; k++) {
      const next = byteAt(i + k);
      if (next < 0x80 || next > 0xbf) return i;
    }
    i += length;
  }
  return -1;
}

/** The text, or why these bytes are not UTF-8 text (a UTF-8 byte-order mark is kept for the caller). */
export function decodeUtf8(bytes: Uint8Array): string | NotUtf8 {
  if (startsWith(bytes, [0xff, 0xfe, 0, 0]) || startsWith(bytes, [0, 0, 0xfe, 0xff]))
    return { line: 1, reason: "is UTF-32 (byte-order mark): convert it to UTF-8" };
  if (startsWith(bytes, [0xff, 0xfe]) || startsWith(bytes, [0xfe, 0xff]))
    return { line: 1, reason: `is UTF-16 (byte-order mark): ${CONVERT}` };
  // No text format we read holds a NUL; UTF-16 without a byte-order mark and binary files are full of them.
  const nul = bytes.indexOf(0);
  if (nul >= 0)
    return {
      line: lineAt(bytes, nul),
      reason: `is not UTF-8 text: a NUL byte at offset ${nul} (a binary file, or UTF-16 without a byte-order mark?)`,
    };
  if (!isUtf8(bytes)) {
    const offset = firstInvalidByte(bytes);
    const byte = (bytes[offset] ?? 0).toString(16).padStart(2, "0");
    return {
      line: lineAt(bytes, offset),
      reason: `is not UTF-8 text: byte 0x${byte} at offset ${offset} is not valid UTF-8; convert it to UTF-8`,
    };
  }
  return new TextDecoder("utf-8", { ignoreBOM: true }).decode(bytes);
}
