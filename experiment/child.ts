// Each run of an experiment is the same CLI a user runs (`imtrain train`, `launch`, `generate`), in a process
// of its own: a crash or a leak in one run cannot spoil the next, and what a run did is in its own log file.
// Every child has a deadline; a SIGINT/SIGTERM to the experiment stops the child in flight first.
import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream } from "node:fs";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
/** After SIGTERM (train checkpoints and stops after its step), how long before SIGKILL. */
const STOP_GRACE_MS = 30_000;

export interface ChildResult {
  readonly status: number | null;
  readonly stdout: string;
  /** The last lines of stderr, for a one-line reason when it failed. */
  readonly lastError: string;
  readonly timedOut: boolean;
}

const running = new Set<ChildProcess>();

/**
 * The line of a child's stderr that says why it failed: the last error line ("imtrain: …", "TypeError: …"),
 * not the stack frames or the "Node.js v20" that an uncaught exception ends with; else the last line.
 */
export function failureLine(stderr: string): string {
  const lines = stderr
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !/^at /.test(line) && !/^Node\.js v\d/.test(line));
  return lines.filter((line) => /^(imtrain:|\w*Error\b)/.test(line)).at(-1) ?? lines.at(-1) ?? "";
}

/** Stops every child in flight (the experiment got a signal): SIGTERM, then SIGKILL after a grace period. */
export function stopChildren(): void {
  for (const child of running) {
    child.kill("SIGTERM");
    setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS).unref();
  }
}

/** Runs `imtrain args…`, its stderr appended to `logFile`, within `timeoutMs`. */
export function runImtrain(
  args: readonly string[],
  logFile: string,
  timeoutMs: number,
): Promise<ChildResult> {
  return new Promise((resolve, reject) => {
    const log = createWriteStream(logFile, { flags: "a" });
    log.write(`$ imtrain ${args.join(" ")}\n`);
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    running.add(child);
    let stdout = "";
    let tail = "";
    let timedOut = false;
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => {
      log.write(chunk);
      tail = (tail + chunk.toString()).slice(-4000);
    });
    const deadline = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.once("error", (error) => {
      clearTimeout(deadline);
      running.delete(child);
      log.end();
      reject(error);
    });
    child.once("close", (status) => {
      clearTimeout(deadline);
      running.delete(child);
      log.end(() => resolve({ status, stdout, lastError: failureLine(tail), timedOut }));
    });
  });
}
