// Reads instruction data (a JSON array or JSON Lines) in the common public formats into Conversations. Every
// record keeps its file:line, so one bad record among tens of thousands can be found and fixed by hand.
import * as fs from "node:fs";

import { DataError, describeFileError, OptionError, UserError, type SourceRef } from "../errors.js";
import { decodeUtf8 } from "../utf8-text.js";
import type { Conversation, Role, Turn } from "./conversation.js";

export const DATA_FORMATS = ["alpaca", "dolly", "chat", "prompt-completion", "self-instruct"] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

export function isDataFormat(value: string): value is DataFormat {
  return (DATA_FORMATS as readonly string[]).includes(value);
}

export interface ParseOptions {
  /**
   * Drop a record (or self-instruct instance) whose output is empty, reporting it here, instead of throwing.
   * Public Alpaca files hold a few such records; strict is the default so nothing is dropped unless asked.
   */
  readonly onEmptyOutput?: (skipped: DataError) => void;
}

/** "auto" picks the first row whose keys the first record has all of; order matters (Dolly before Alpaca). */
const FORMAT_DETECTION: readonly { readonly keys: readonly string[]; readonly format: DataFormat }[] = [
  { keys: ["messages"], format: "chat" },
  { keys: ["instances"], format: "self-instruct" },
  { keys: ["prompt", "completion"], format: "prompt-completion" },
  { keys: ["response"], format: "dolly" },
  { keys: ["output"], format: "alpaca" },
];

type JsonObject = Record<string, unknown>;

interface RecordContext {
  readonly source: SourceRef;
  /** Set when the format came from "auto", so a mismatching record can say what the file was taken for. */
  readonly detectedAs: DataFormat | undefined;
  readonly onEmptyOutput: ((skipped: DataError) => void) | undefined;
}

type RecordParser = (record: JsonObject, context: RecordContext) => Conversation[];

const RECORD_PARSERS: Record<DataFormat, RecordParser> = {
  alpaca: parseAlpaca,
  dolly: parseDolly,
  chat: parseChat,
  "prompt-completion": parsePromptCompletion,
  "self-instruct": parseSelfInstruct,
};

export function readDataFile(
  file: string,
  format: DataFormat | "auto",
  options: ParseOptions = {},
): Conversation[] {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch (error) {
    throw new UserError(`${file}: cannot read data file (${describeFileError(error)})`, { cause: error });
  }
  const text = decodeUtf8(bytes);
  if (typeof text !== "string") throw new DataError({ file, line: text.line }, text.reason);
  return parseDataText(file, text, format, options);
}

export function parseDataText(
  file: string,
  text: string,
  format: DataFormat | "auto",
  options: ParseOptions = {},
): Conversation[] {
  // The type rules this out, but the value usually comes straight from a command-line flag.
  if (format !== "auto" && !isDataFormat(format)) {
    throw new OptionError(
      "format",
      `unknown data format "${String(format)}"; use auto or one of ${formatList()}`,
    );
  }
  const rawRecords = splitRecords(file, text);
  if (rawRecords.length === 0) throw new DataError({ file, line: 1 }, "no records");

  let recordFormat = format === "auto" ? undefined : format;
  let detectedAs: DataFormat | undefined;
  const conversations: Conversation[] = [];
  for (const raw of rawRecords) {
    const source: SourceRef = { file, line: raw.line };
    const record = parseRecord(raw.text, source);
    if (recordFormat === undefined) {
      recordFormat = detectFormat(record, source);
      detectedAs = recordFormat;
    }
    const context: RecordContext = { source, detectedAs, onEmptyOutput: options.onEmptyOutput };
    conversations.push(...RECORD_PARSERS[recordFormat](record, context));
  }
  return conversations;
}

function detectFormat(record: JsonObject, source: SourceRef): DataFormat {
  const match = FORMAT_DETECTION.find(({ keys }) => keys.every((key) => Object.hasOwn(record, key)));
  if (match !== undefined) return match.format;
  const keys = Object.keys(record).join(", ");
  throw new DataError(
    source,
    `cannot tell the data format from keys [${keys}]; pass --format one of ${formatList()}`,
  );
}

function formatList(): string {
  return DATA_FORMATS.join(", ");
}

// ---- Container: JSON array or JSON Lines -------------------------------------------------------------------

interface RawRecord {
  readonly text: string;
  /** 1-based line the record starts on. */
  readonly line: number;
}

function splitRecords(file: string, text: string): RawRecord[] {
  const body = text.startsWith("\uFEFF") ? text.slice(1) : text;
  const firstNonSpace = body.search(/\S/);
  if (firstNonSpace >= 0 && body.charAt(firstNonSpace) === "[")
    return scanJsonArray(file, body, firstNonSpace);
  return splitJsonLines(body);
}

function splitJsonLines(text: string): RawRecord[] {
  const records: RawRecord[] = [];
  text.split("\n").forEach((line, index) => {
    if (line.trim() !== "") records.push({ text: line, line: index + 1 });
  });
  return records;
}

function isJsonWhitespace(char: string): boolean {
  return char === " " || char === "\n" || char === "\r" || char === "\t";
}

/**
 * Finds each top-level element of the JSON array opening at `open` without parsing it, so that every element is
 * parsed on its own and an error or a record names the line the element starts on. Only strings and bracket
 * depth are tracked; whatever else is wrong inside an element is left for JSON.parse to report.
 */
function scanJsonArray(file: string, text: string, open: number): RawRecord[] {
  const records: RawRecord[] = [];
  let line = 1 + countNewlines(text, 0, open);
  const arrayLine = line;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let element: { start: number; line: number } | undefined;
  for (let i = open + 1; i < text.length; i++) {
    const char = text.charAt(i);
    if (char === "\n") line++;
    if (inString) {
      if (escaped) escaped = false;
      else if (char === "\\") escaped = true;
      else if (char === '"') inString = false;
      continue;
    }
    if (depth === 0 && (char === "," || char === "]")) {
      if (element !== undefined) {
        records.push({ text: text.slice(element.start, i), line: element.line });
        element = undefined;
      } else if (char === "," || records.length > 0) {
        throw new DataError({ file, line }, `malformed JSON: expected an array element before '${char}'`);
      }
      if (char === "]") {
        const trailing = text.slice(i + 1).search(/\S/);
        if (trailing >= 0) {
          const trailingLine = line + countNewlines(text, i + 1, i + 1 + trailing);
          throw new DataError(
            { file, line: trailingLine },
            "malformed JSON: unexpected text after the array",
          );
        }
        return records;
      }
      continue;
    }
    if (element === undefined) {
      if (isJsonWhitespace(char)) continue;
      element = { start: i, line };
    }
    if (char === '"') inString = true;
    else if (char === "{" || char === "[") depth++;
    // A stray closer at depth 0 stays in the element, where JSON.parse reports it.
    else if ((char === "}" || char === "]") && depth > 0) depth--;
  }
  throw new DataError(
    { file, line: element?.line ?? arrayLine },
    "malformed JSON: the array is not closed with ']'",
  );
}

function countNewlines(text: string, from: number, to: number): number {
  let count = 0;
  for (let i = text.indexOf("\n", from); i >= 0 && i < to; i = text.indexOf("\n", i + 1)) count++;
  return count;
}

function parseRecord(text: string, source: SourceRef): JsonObject {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new DataError(source, `malformed JSON: ${describeError(error)}`, { cause: error });
  }
  if (!isJsonObject(value)) throw new DataError(source, `expected a JSON object, got ${jsonTypeName(value)}`);
  return value;
}

function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function jsonTypeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return `a ${typeof value}`;
}

/** JSON.parse quotes the text it failed on: control characters are escaped so they cannot garble the line. */
function describeError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const isControl = (code: number) => code < 0x20 || (code >= 0x7f && code <= 0x9f);
  return [...message]
    .map((c) => (isControl(c.charCodeAt(0)) ? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}` : c))
    .join("");
}

// ---- Field checks shared by the formats ----------------------------------------------------------------------

function fieldError(context: RecordContext, field: string, expected: string): DataError {
  const note =
    context.detectedAs === undefined
      ? ""
      : ` (the file was detected as ${context.detectedAs} from its first record)`;
  return new DataError(context.source, `field "${field}" is missing or not ${expected}${note}`);
}

function requireString(record: JsonObject, key: string, context: RecordContext, field = key): string {
  const value = record[key];
  if (typeof value !== "string") throw fieldError(context, field, "a string");
  return value;
}

/** Absent, null and blank all mean "no input", so templates never render an empty input block. */
function optionalInput(
  record: JsonObject,
  key: string,
  context: RecordContext,
  field = key,
): string | undefined {
  const value = record[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "string") throw fieldError(context, field, "a string");
  return value.trim() === "" ? undefined : value;
}

function requireList(record: JsonObject, key: string, context: RecordContext): readonly unknown[] {
  const value: unknown = record[key];
  if (!Array.isArray(value)) throw fieldError(context, key, "a list");
  if (value.length === 0) throw new DataError(context.source, `field "${key}" is an empty list`);
  return value;
}

function requireObject(value: unknown, field: string, context: RecordContext): JsonObject {
  if (!isJsonObject(value)) throw fieldError(context, field, "an object");
  return value;
}

function requireNonEmpty(text: string, what: string, context: RecordContext): void {
  if (text.trim() === "") throw new DataError(context.source, `empty ${what}`);
}

/** False when the output is empty and the caller chose to drop such records; throws when it did not. */
function keepOutput(text: string, what: string, context: RecordContext): boolean {
  if (text.trim() !== "") return true;
  if (context.onEmptyOutput === undefined) {
    throw new DataError(context.source, `empty ${what} (--drop-empty-outputs skips such records)`);
  }
  context.onEmptyOutput(new DataError(context.source, `empty ${what}`));
  return false;
}

interface Exchange {
  readonly instruction: string;
  readonly input: string | undefined;
  readonly output: string;
}

/** One user turn (with its optional input) answered by one assistant turn. */
function singleExchange(
  exchange: Exchange,
  names: { readonly instruction: string; readonly output: string },
  context: RecordContext,
): Conversation[] {
  requireNonEmpty(exchange.instruction, names.instruction, context);
  if (!keepOutput(exchange.output, names.output, context)) return [];
  const user: Turn =
    exchange.input === undefined
      ? { role: "user", content: exchange.instruction }
      : { role: "user", content: exchange.instruction, input: exchange.input };
  return [{ turns: [user, { role: "assistant", content: exchange.output }], source: context.source }];
}

// ---- One parser per format -----------------------------------------------------------------------------------

/** `{instruction, input?, output}` */
function parseAlpaca(record: JsonObject, context: RecordContext): Conversation[] {
  const instruction = requireString(record, "instruction", context);
  const output = requireString(record, "output", context);
  const input = optionalInput(record, "input", context);
  return singleExchange(
    { instruction, input, output },
    { instruction: "instruction", output: "output" },
    context,
  );
}

/** `{instruction, context?, response}` (databricks-dolly-15k) */
function parseDolly(record: JsonObject, context: RecordContext): Conversation[] {
  const instruction = requireString(record, "instruction", context);
  const output = requireString(record, "response", context);
  const input = optionalInput(record, "context", context);
  return singleExchange(
    { instruction, input, output },
    { instruction: "instruction", output: "response" },
    context,
  );
}

/** `{prompt, completion}` (OpenAI fine-tuning style) */
function parsePromptCompletion(record: JsonObject, context: RecordContext): Conversation[] {
  const instruction = requireString(record, "prompt", context);
  const output = requireString(record, "completion", context);
  return singleExchange(
    { instruction, input: undefined, output },
    { instruction: "prompt", output: "completion" },
    context,
  );
}

/** `{instruction, instances: [{input, output}, ...]}`: one Conversation per instance, all at the record's line. */
function parseSelfInstruct(record: JsonObject, context: RecordContext): Conversation[] {
  const instruction = requireString(record, "instruction", context);
  const instances = requireList(record, "instances", context);
  requireNonEmpty(instruction, "instruction", context);
  return instances.flatMap((value, index) => {
    const field = `instances[${index}]`;
    const instance = requireObject(value, field, context);
    const output = requireString(instance, "output", context, `${field}.output`);
    const input = optionalInput(instance, "input", context, `${field}.input`);
    return singleExchange(
      { instruction, input, output },
      { instruction: "instruction", output: `output in ${field}` },
      context,
    );
  });
}

const ROLES: readonly Role[] = ["system", "user", "assistant"];

function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

/** `{messages: [{role, content}, ...]}`: an optional leading system turn, then user first and assistant last. */
function parseChat(record: JsonObject, context: RecordContext): Conversation[] {
  const messages = requireList(record, "messages", context);
  const turns: Turn[] = [];
  let keep = true;
  messages.forEach((value, index) => {
    const field = `messages[${index}]`;
    const message = requireObject(value, field, context);
    const role = requireString(message, "role", context, `${field}.role`);
    const content = requireString(message, "content", context, `${field}.content`);
    if (!isRole(role)) {
      throw new DataError(
        context.source,
        `${field} has unknown role "${role}"; expected system, user or assistant`,
      );
    }
    if (role === "system" && index > 0) {
      throw new DataError(context.source, `${field} is a system turn; only the first message may be one`);
    }
    const previous = turns[turns.length - 1];
    if (role === "assistant" && (previous === undefined || previous.role === "system")) {
      throw new DataError(context.source, `${field} is an assistant turn with no user turn before it`);
    }
    if (role === "user") requireNonEmpty(content, `user content in ${field}`, context);
    if (role === "assistant" && keep) keep = keepOutput(content, `assistant content in ${field}`, context);
    turns.push({ role, content });
  });
  const last = turns[turns.length - 1];
  if (last?.role !== "assistant") {
    throw new DataError(
      context.source,
      `the conversation ends with a ${last?.role ?? "missing"} turn, not assistant`,
    );
  }
  return keep ? [{ turns, source: context.source }] : [];
}
