// Runs the compiled CLI in a child process, as a user would.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** dist/cli/main.js, from a compiled test in dist/test/<layer>/. */
export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), "../../cli/main.js");

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `imtrain args…` to completion without blocking the event loop (other tests' servers keep serving), in
 * `cwd` if given (where a run without --out makes its runs/ directory).
 */
export function runCli(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd?: string,
): Promise<CliRun> {
  return runNodeScript(CLI, args, env, cwd);
}

/** Runs `node script args…` (a compiled entry point such as the bench) to completion, collecting its output. */
export function runNodeScript(
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  cwd?: string,
): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env, cwd, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.once("error", reject);
    child.once("close", (status) => resolvePromise({ status, stdout, stderr }));
  });
}

/** Runs `imtrain args…` in `cwd` and waits (blocking) for it; for tests that need nothing else running. */
export function runCliSync(args: readonly string[], cwd: string): CliRun {
  const result = spawnSync(process.execPath, [CLI, ...args], { cwd, encoding: "utf8", timeout: 120_000 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A CLI child process whose stderr is watched as it runs. */
export interface CliProcess {
  readonly child: ChildProcess;
  /** Everything it has printed on stderr so far. */
  readonly stderr: string;
  readonly exit: Promise<number | null>;
  /**
   * Resolves when stderr has printed a match of `pattern`; rejects after `timeoutMs`, or as soon as the
   * process has exited without printing one (it never will), showing the tail.
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<void>;
}

interface StderrWaiter {
  readonly pattern: RegExp;
  resolve(): void;
  reject(error: Error): void;
}

/** Starts `imtrain args…` in the background; stdout is ignored. */
export function startCli(args: readonly string[]): CliProcess {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  /** How the process ended, once stderr is closed (so every line it printed has been seen). */
  let ended: string | undefined;
  const waiters = new Set<StderrWaiter>();
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString();
    for (const waiter of waiters) {
      if (waiter.pattern.test(stderr)) {
        waiters.delete(waiter);
        waiter.resolve();
      }
    }
  });
  const notPrinted = (pattern: RegExp, why: string) =>
    new Error(`no ${String(pattern)} on stderr: ${why}:\n${stderr.slice(-3000)}`);
  child.once("close", (code, signal) => {
    ended = `the process exited (${signal ?? `code ${String(code)}`}) without printing it`;
    for (const waiter of waiters) waiter.reject(notPrinted(waiter.pattern, ended));
    waiters.clear();
  });
  return {
    child,
    get stderr() {
      return stderr;
    },
    exit: new Promise((resolve) => child.once("exit", (code) => resolve(code))),
    waitFor: (pattern, timeoutMs = 60_000) =>
      new Promise((resolve, reject) => {
        if (pattern.test(stderr)) return resolve();
        if (ended !== undefined) return reject(notPrinted(pattern, ended));
        const timer = setTimeout(() => {
          waiters.delete(waiter);
          reject(notPrinted(pattern, `not within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter: StderrWaiter = {
          pattern,
          resolve: () => {
            clearTimeout(timer);
            resolve();
          },
          reject: (error) => {
            clearTimeout(timer);
            reject(error);
          },
        };
        waiters.add(waiter);
      }),
  };
}
