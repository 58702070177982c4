// Errors a user can act on. Each names the place (file:line, flag, worker, step) in its message and keeps
// the fields structured, so the CLI prints one line without a stack trace and callers can branch on them.

/** Base of every error that is the user's input, not our bug: the CLI prints only its message. */
export class UserError extends Error {
  override readonly name: string = "UserError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** Where an input record came from: a file and a 1-based line (for a JSON array, the line its element starts on). */
export interface SourceRef {
  readonly file: string;
  readonly line: number;
}

export function formatSource(source: SourceRef): string {
  return `${source.file}:${source.line}`;
}

/** A malformed or unusable data record. */
export class DataError extends UserError {
  override readonly name = "DataError";
  constructor(
    readonly source: SourceRef,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${formatSource(source)}: ${reason}`, options);
  }
}

/** A bad flag, option or config value. */
export class OptionError extends UserError {
  override readonly name = "OptionError";
  constructor(
    readonly option: string,
    readonly reason: string,
  ) {
    super(`--${option}: ${reason}`);
  }
}

/** A requested compute backend could not be loaded. */
export class BackendError extends UserError {
  override readonly name = "BackendError";
  constructor(
    readonly backend: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`backend ${backend}: ${reason}`, options);
  }
}

/** A checkpoint or model directory that cannot be read or does not fit. */
export class CheckpointError extends UserError {
  override readonly name = "CheckpointError";
  constructor(
    readonly path: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${reason}`, options);
  }
}

/** What went wrong opening a file the user named, in words (the path is in the message already). */
export function describeFileError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EISDIR") return "is a directory, not a file";
  if (code === "ENOTDIR") return "a part of the path is a file, not a directory";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  return error instanceof Error ? error.message : String(error);
}
