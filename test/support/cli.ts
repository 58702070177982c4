// Runs the compiled CLI in a child process, as a user would.
import { spawn, spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** dist/cli/main.js, from a compiled test in dist/test/<layer>/. */
export const CLI = resolve(dirname(fileURLToPath(import.meta.url)), "../../cli/main.js");

export interface CliRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `imtrain args…` to completion without blocking the event loop (other tests' servers keep serving). */
export function runCli(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<CliRun> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { env, stdio: ["ignore", "pipe", "pipe"] });
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
