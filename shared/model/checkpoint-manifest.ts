// A checkpoint's manifest: the size and SHA-256 of every file in it, written last (and synced), so a resume
// tells a whole checkpoint from a truncated or bit-flipped one before it trusts a byte of it.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { open, readFile, rename, stat } from "node:fs/promises";
import { join } from "node:path";
import { CheckpointError } from "../errors.js";

export const MANIFEST_FILE = "manifest.json";

interface Manifest {
  readonly format: 1;
  readonly files: Record<string, { readonly bytes: number; readonly sha256: string }>;
}

/** Whether `path` exists (file or directory). */
export async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest("hex");
}

/** Writes `bytes` to `path` through a synced temporary file: a crash leaves the old file or the new one. */
export async function writeFileSynced(path: string, bytes: string | Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await open(tmp, "w");
  try {
    await handle.writeFile(bytes);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(tmp, path);
}

/** Flushes a directory's entries (renames into it) to disk. */
export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Records `files` (names inside `dir`, already written and synced). */
export async function writeManifest(dir: string, files: readonly string[]): Promise<void> {
  const entries: Manifest["files"] = {};
  for (const file of files) {
    const path = join(dir, file);
    entries[file] = { bytes: (await stat(path)).size, sha256: await sha256Of(path) };
  }
  const manifest: Manifest = { format: 1, files: entries };
  await writeFileSynced(join(dir, MANIFEST_FILE), JSON.stringify(manifest, null, 2) + "\n");
}

/**
 * Checks every file of `dir` against its manifest; throws a CheckpointError naming the first that is
 * missing, truncated or changed. A directory without a manifest (a model from elsewhere, or an older
 * imtrain) is "unverified": it is loaded as it is.
 */
export async function verifyManifest(dir: string): Promise<"verified" | "unverified"> {
  const path = join(dir, MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return "unverified";
  }
  let manifest: Manifest;
  try {
    manifest = JSON.parse(text) as Manifest;
    if (manifest.format !== 1 || typeof manifest.files !== "object")
      throw new Error("not a format-1 manifest");
  } catch (error) {
    throw new CheckpointError(path, `unreadable manifest: ${(error as Error).message}`);
  }
  for (const [file, expected] of Object.entries(manifest.files)) {
    const filePath = join(dir, file);
    const bytes = await stat(filePath).then(
      (s) => s.size,
      () => undefined,
    );
    if (bytes === undefined) throw new CheckpointError(filePath, "missing (listed in the manifest)");
    if (bytes !== expected.bytes)
      throw new CheckpointError(
        filePath,
        `is ${bytes} bytes, the manifest says ${expected.bytes}: truncated?`,
      );
    if ((await sha256Of(filePath)) !== expected.sha256)
      throw new CheckpointError(filePath, "does not match its SHA-256 in the manifest: corrupted");
  }
  return "verified";
}
