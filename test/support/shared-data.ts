// The real instruction data sets beside the repository (../shared/data, each with a SOURCE.md). A fresh clone
// may lack them: tests that read them skip then, except under CI=true, where their absence fails.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";

/** The folder holding package.json, found from this compiled file (dist/test/support/). */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "package.json"))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/** ../shared/data, or undefined after skipping `t` when it is absent (failing instead under CI=true). */
export function sharedDataDir(t: TestContext): string | undefined {
  const dataDir = resolve(repoRoot(), "../shared/data");
  if (existsSync(dataDir)) return dataDir;
  if (process.env.CI === "true") assert.fail(`${dataDir} is missing; CI must provide the shared data sets`);
  t.skip(`${dataDir} is absent`);
  return undefined;
}
