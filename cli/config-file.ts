// --config FILE: flags from a YAML or JSON file, with keys spelled like the flags. Read here rather than
// by yargs, so that a missing or broken file is one line naming FILE:line, and so that each value keeps the
// line it came from for the checks in flag-values.ts.
//   - YAML 1.1, so yes/no/on/off are booleans as most people expect of YAML (JSON is read the same way);
//   - a path in the file (data, eval-data, out, resume, and model or tokenizer when not a built-in name) is
//     relative to the file's directory, so a config and its data can move together.
import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join } from "node:path";
import { isMap, isScalar, LineCounter, parseDocument } from "yaml";
import { describeFileError, UserError } from "../shared/errors.js";
import { MODEL_PRESETS } from "../shared/model/config.js";
import { decodeUtf8 } from "../shared/utf8-text.js";
import { camelCase, lastRawFlag } from "./raw-args.js";

export interface ConfigFile {
  readonly file: string;
  /** Flag name as written in the file → value (paths already resolved against the file's directory). */
  readonly values: Readonly<Record<string, unknown>>;
  /** Flag name → the 1-based line its key is on. */
  readonly lines: ReadonlyMap<string, number>;
}

const TOKENIZER_NAMES = ["byte", "gpt2"];

/** Keys whose values are paths; `names` are the values that are not (built-in names). */
const PATH_KEYS: ReadonlyMap<string, readonly string[]> = new Map([
  ["data", []],
  ["eval-data", []],
  ["out", []],
  ["resume", []],
  ["model", Object.keys(MODEL_PRESETS)],
  ["tokenizer", TOKENIZER_NAMES],
]);

function pathKey(key: string): readonly string[] | undefined {
  for (const [flag, names] of PATH_KEYS) if (key === flag || key === camelCase(flag)) return names;
  return undefined;
}

function configError(file: string, line: number | undefined, reason: string): UserError {
  return new UserError(`--config ${file}${line === undefined ? "" : `:${line}`}: ${reason}`);
}

/** The --config FILE on the command line (the last one wins, as for every flag). */
export function configPath(args: readonly string[]): string | undefined {
  const raw = lastRawFlag(args, "config");
  if (raw !== undefined && (raw.text === undefined || raw.text === ""))
    throw new UserError("--config: needs a file (YAML or JSON)");
  return raw?.text;
}

export function readConfigFile(file: string): ConfigFile {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    throw configError(file, undefined, describeFileError(error));
  }
  const text = decodeUtf8(bytes);
  if (typeof text !== "string") throw configError(file, text.line, text.reason);

  const lineCounter = new LineCounter();
  const document = parseDocument(text, { version: "1.1", lineCounter });
  const [error] = document.errors;
  if (error !== undefined) {
    // The library's message ends with " at line L, column C:" and a picture of the line: keep the words.
    const reason = error.message.split("\n")[0]?.replace(/ at line \d+, column \d+:?$/, "") ?? error.code;
    throw configError(file, error.linePos?.[0].line, reason);
  }
  if (document.contents === null) return { file, values: {}, lines: new Map() };
  if (!isMap(document.contents))
    throw configError(file, 1, "not a mapping of flags (lines like `batch-size: 32`)");

  const parsed = document.toJS() as Record<string, unknown>;
  const values: Record<string, unknown> = {};
  const lines = new Map<string, number>();
  for (const pair of document.contents.items) {
    const key = isScalar(pair.key) ? pair.key.value : undefined;
    const line =
      isScalar(pair.key) && pair.key.range ? lineCounter.linePos(pair.key.range[0]).line : undefined;
    if (typeof key !== "string") throw configError(file, line, `${String(key)} is not a flag name`);
    const value = parsed[key];
    if (value === null || value === undefined) throw configError(file, line, `${key}: has no value`);
    values[key] = relativeTo(dirname(file), key, value);
    if (line !== undefined) lines.set(key, line);
  }
  return { file, values, lines };
}

function relativeTo(dir: string, key: string, value: unknown): unknown {
  const names = pathKey(key);
  if (names === undefined || typeof value !== "string" || value === "") return value;
  if (isAbsolute(value) || names.includes(value)) return value;
  return join(dir, value);
}
