// The GPUs a webgpu test can use. CI has a software one, Mesa's lavapipe (a Vulkan driver that runs on the
// CPU; .ci/run installs it). Missing, a test that needs it skips locally but fails in CI.
import { createRequire } from "node:module";
import { spawnSync } from "node:child_process";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestContext } from "node:test";
import type { ListedAdapter } from "../../shared/backend/webgpu.js";

const WEBGPU_MODULE = resolve(dirname(fileURLToPath(import.meta.url)), "../../shared/backend/webgpu.js");

export interface GpuCensus {
  readonly adapters: readonly ListedAdapter[];
  /** Why none could be listed (the webgpu package missing), else undefined. */
  readonly error: string | undefined;
}

let census: GpuCensus | undefined;

/**
 * Dawn's adapters, listed in a child process: Dawn's instance would keep this one (the test runner) alive.
 */
export function gpuCensus(): GpuCensus {
  if (census !== undefined) return census;
  const script =
    `const { webGpuAdapters } = await import(${JSON.stringify(WEBGPU_MODULE)});` +
    "try { console.log(JSON.stringify({ adapters: await webGpuAdapters() })); }" +
    "catch (error) { console.log(JSON.stringify({ adapters: [], error: error.message })); }" +
    "process.exit(0);";
  const result = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
    encoding: "utf8",
    timeout: 60_000,
  });
  const line = result.stdout.trim().split("\n").pop() ?? "";
  try {
    census = JSON.parse(line) as GpuCensus;
  } catch {
    census = { adapters: [], error: `listing adapters failed: ${result.stderr.trim().slice(-500)}` };
  }
  return census;
}

/** True if the software adapter is there; else skips the test locally, or throws in CI. */
export function requireSoftwareGpu(t: TestContext): boolean {
  const { adapters, error } = gpuCensus();
  if (adapters.some((a) => a.software)) return true;
  const why =
    error ??
    `no software Vulkan adapter (Dawn sees: ${adapters.map((a) => a.name).join(", ") || "none"}); ` +
      "install Mesa 25's lavapipe: apt-get install -t bookworm-backports mesa-vulkan-drivers libvulkan1";
  if (process.env["CI"] === "true") throw new Error(`${why}: CI must install it (.ci/run)`);
  t.skip(why);
  return false;
}

/** Whether an npm package (an optional backend) is installed. */
export function installed(name: string): boolean {
  try {
    createRequire(import.meta.url).resolve(name);
    return true;
  } catch {
    return false;
  }
}
