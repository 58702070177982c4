// Checks of what yargs made of the flags, run before its own validation so that each problem is one line
// naming the flag, or FILE:line for a --config file:
//   - a number that is none ("--steps abc": yargs hands on NaN, and the range check would say "got NaN");
//   - a flag given twice: the last one wins, as in most command lines (yargs would make a list of both, or
//     add a later 1 to a number);
//   - a boolean written as a word yargs silently reads as false ("--json=yes", or "maybe" in a config);
//   - a value that is not one of a flag's choices (yargs would say "Invalid values: Argument: format, …");
//   - a flag, or a config key, that is no flag of the command, and a list or mapping where one value belongs.
import type { Argv } from "yargs";
import { UserError } from "../shared/errors.js";
import type { ConfigFile } from "./config-file.js";
import { camelCase, lastRawFlag, rawFlagNames } from "./raw-args.js";

/** What yargs knows of the running command's options (its getOptions(), which @types/yargs leaves out). */
export interface DeclaredOptions {
  readonly key: Readonly<Record<string, unknown>>;
  readonly alias: Readonly<Record<string, readonly string[]>>;
  readonly number: readonly string[];
  readonly boolean: readonly string[];
  readonly string: readonly string[];
  readonly array: readonly string[];
  readonly choices: Readonly<Record<string, readonly unknown[] | undefined>>;
}

export function declaredOptions(parser: Argv): DeclaredOptions {
  return (parser as unknown as { getOptions(): DeclaredOptions }).getOptions();
}

/** yargs' own flags, which take no value from a config file. */
const BUILT_IN = new Set(["help", "version"]);

function flagError(flag: string, reason: string): UserError {
  return new UserError(`--${flag}: ${reason}`);
}

function configError(config: ConfigFile, key: string, reason: string): UserError {
  const line = config.lines.get(key);
  return new UserError(`--config ${config.file}${line === undefined ? "" : `:${line}`}: ${key}: ${reason}`);
}

/** The spelling of `flag` the config file used, if it sets it. */
function configKey(config: ConfigFile | undefined, flag: string): string | undefined {
  if (config === undefined) return undefined;
  return [flag, camelCase(flag)].find((key) => Object.hasOwn(config.values, key));
}

function isNumberText(value: unknown): boolean {
  return typeof value === "string" && value.trim() !== "" && !Number.isNaN(Number(value));
}

function notAChoice(value: unknown, choices: readonly unknown[]): string {
  return `${JSON.stringify(value)} is not one of ${choices.map(String).join(", ")}`;
}

/** What the file says for `flag` must be one value of the flag's type. */
function checkConfigValue(config: ConfigFile, key: string, flag: string, declared: DeclaredOptions): void {
  const written = config.values[key];
  const choices = declared.choices[flag];
  if (typeof written === "object" && written !== null)
    throw configError(config, key, `takes one value, not a ${Array.isArray(written) ? "list" : "mapping"}`);
  if (declared.number.includes(flag) && typeof written !== "number" && !isNumberText(written))
    throw configError(config, key, `${JSON.stringify(written)} is not a number`);
  if (declared.boolean.includes(flag) && typeof written !== "boolean")
    throw configError(
      config,
      key,
      `${JSON.stringify(written)} is not a boolean (true/false, yes/no, on/off)`,
    );
  if (choices !== undefined && !choices.includes(written))
    throw configError(config, key, notAChoice(written, choices));
}

export function checkFlagValues(
  argv: Record<string, unknown>,
  declared: DeclaredOptions,
  args: readonly string[],
  config: ConfigFile | undefined,
): void {
  const command = String((argv["_"] as unknown[] | undefined)?.[0] ?? "imtrain");
  const spellings = (flag: string) => [flag, camelCase(flag), ...(declared.alias[flag] ?? [])];

  const known = new Set(Object.keys(declared.key).flatMap(spellings));
  for (const name of rawFlagNames(args)) {
    const negated = name.startsWith("no-") && declared.boolean.includes(name.slice(3));
    if (!known.has(name) && !negated)
      throw flagError(name, `not a flag of ${command} (see imtrain ${command} --help)`);
  }
  if (config !== undefined) {
    for (const key of Object.keys(config.values))
      if (!known.has(key)) throw configError(config, key, `not a flag of ${command}`);
  }

  for (const flag of Object.keys(declared.key)) {
    if (BUILT_IN.has(flag) || declared.array.includes(flag)) continue;
    const raw = lastRawFlag(args, flag);
    if (raw === undefined) {
      // Not on the command line: from the config file, if anywhere (else the default).
      const key = configKey(config, flag);
      if (key !== undefined && config !== undefined) checkConfigValue(config, key, flag, declared);
      continue;
    }
    // Given more than once, the last one wins. yargs would make a list of them, or for numbers worse: it
    // takes a later 1 for a count and adds it ("--limit 5 --limit 1" gives 6), so numbers are read again
    // from their last text, as yargs reads one (Number()).
    const parsed = argv[camelCase(flag)];
    const value: unknown =
      declared.number.includes(flag) && raw.text !== undefined
        ? Number(raw.text)
        : Array.isArray(parsed)
          ? parsed.at(-1)
          : parsed;
    for (const name of spellings(flag)) argv[name] = value;
    const choices = declared.choices[flag];
    if (declared.boolean.includes(flag)) {
      if (raw.inline && raw.text !== "true" && raw.text !== "false")
        throw flagError(flag, `"${raw.text}" is not true or false (write --${flag} or --no-${flag})`);
    } else if (raw.text === undefined) {
      throw flagError(flag, declared.number.includes(flag) ? "needs a number" : "needs a value");
    } else if (declared.number.includes(flag) && (typeof value !== "number" || Number.isNaN(value))) {
      throw flagError(flag, `"${raw.text}" is not a number`);
    } else if (choices !== undefined && !choices.includes(value)) {
      throw flagError(flag, notAChoice(raw.text, choices));
    }
  }
}
