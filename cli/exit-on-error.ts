// How the CLI ends on an error. The user's (a UserError: a bad flag, file or run directory) is one line,
// `imtrain: <message naming the flag, file or file:line>`, and exit code 2. Anything else is our bug: its
// stack is kept for the report, and the last line says it is an internal error (exit code 1).
import { UserError } from "../shared/errors.js";

/** One line: a message that spans several would read as several errors. */
export function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, " ").trim();
}

export function reportAndExit(error: unknown): never {
  if (error instanceof UserError) {
    process.stderr.write(`imtrain: ${oneLine(error.message)}\n`);
    process.exit(2);
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`${error instanceof Error ? (error.stack ?? message) : message}\n`);
  process.stderr.write(
    `imtrain: internal error (a bug in imtrain, not in your input; please report it with the trace above): ${oneLine(message)}\n`,
  );
  process.exit(1);
}
