// The command line as typed, before yargs reads it: the one spelling yargs misreads, and where a flag's own
// text is (yargs keeps only what it made of it, so "--steps abc" would reach us as NaN).

/** A number yargs would take for a cluster of short flags: "-1e-3" reads as -1 -e -3. */
const NEGATIVE_NUMBER = /^-(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?$/i;

/** Everything after a bare "--" is positional and left alone. */
function optionsEnd(args: readonly string[]): number {
  const end = args.indexOf("--");
  return end < 0 ? args.length : end;
}

/** "--lr -1e-3" → "--lr=-1e-3", so a negative number reaches the option's validator as a value. */
export function joinNegativeNumbers(args: readonly string[]): string[] {
  const joined: string[] = [];
  const end = optionsEnd(args);
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? "";
    const next = args[i + 1];
    if (i + 1 < end && /^--[^=]+$/.test(arg) && next !== undefined && NEGATIVE_NUMBER.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else joined.push(arg);
  }
  return joined;
}

/** "batch-size" → "batchSize": yargs accepts both spellings. */
export function camelCase(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

/** How a flag last appeared on the command line: its text after "=", the next argument, or no value. */
export interface RawFlag {
  /** undefined: the flag was given with no value after it. */
  readonly text: string | undefined;
  /** The value came after "=" (for a boolean flag, the only way to give one). */
  readonly inline: boolean;
}

/** The last appearance of --`flag` (either spelling), the one that wins; undefined if it is not there. */
export function lastRawFlag(args: readonly string[], flag: string): RawFlag | undefined {
  const names = new Set([flag, camelCase(flag)]);
  let found: RawFlag | undefined;
  const end = optionsEnd(args);
  for (let i = 0; i < end; i++) {
    const match = /^--([^=]+)(?:=(.*))?$/s.exec(args[i] ?? "");
    if (match === null || !names.has(match[1] ?? "")) continue;
    if (match[2] !== undefined) {
      found = { text: match[2], inline: true };
      continue;
    }
    const next = i + 1 < end ? args[i + 1] : undefined;
    found = { text: next === undefined || next.startsWith("-") ? undefined : next, inline: false };
  }
  return found;
}

/** The names of the long flags on the command line ("--batch-size=4" → "batch-size"), in order. */
export function rawFlagNames(args: readonly string[]): string[] {
  return args
    .slice(0, optionsEnd(args))
    .map((arg) => /^--([^=]+)/.exec(arg)?.[1])
    .filter((name): name is string => name !== undefined);
}
