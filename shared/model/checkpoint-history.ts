// Which checkpoints a run keeps, and which one a resume uses. The newest is always DIR (OUT/checkpoint);
// older ones are DIR.step-N (N: the step each holds), of which the newest K-1 are kept (--keep-checkpoints
// K). A crash between the two renames of a save leaves DIR.previous and no DIR: a whole checkpoint too.
// A resume takes the newest one that passes its manifest, and says which it skipped and why.
import { readdir, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { CheckpointError } from "../errors.js";
import { exists, verifyManifest } from "./checkpoint-manifest.js";

const PREVIOUS = ".previous";
const STEP = /\.step-(\d+)$/;

/** The step a checkpoint holds (its trainer state), or undefined if it does not say. */
async function stepOf(dir: string): Promise<number | undefined> {
  try {
    const json = JSON.parse(await readFile(join(dir, "config.json"), "utf8")) as {
      imtrain?: { trainer?: { step?: unknown } };
    };
    const step = json.imtrain?.trainer?.step;
    return Number.isSafeInteger(step) ? (step as number) : undefined;
  } catch {
    return undefined;
  }
}

/** The kept older checkpoints of `dir`, newest first. */
async function olderCheckpoints(dir: string): Promise<{ path: string; step: number }[]> {
  const name = basename(dir);
  const siblings = await readdir(dirname(dir)).catch(() => [] as string[]);
  return siblings
    .flatMap((entry) => {
      const match = entry.startsWith(name) ? STEP.exec(entry.slice(name.length)) : null;
      return match && entry.slice(name.length).length === match[0].length
        ? [{ path: join(dirname(dir), entry), step: Number(match[1]) }]
        : [];
    })
    .sort((a, b) => b.step - a.step);
}

/** Moves the current checkpoint at `dir` aside before a new one takes its place. */
export async function retireCheckpoint(dir: string, keep: number): Promise<void> {
  if (!(await exists(dir))) return;
  const step = keep > 1 ? await stepOf(dir) : undefined;
  const aside = step === undefined ? `${dir}${PREVIOUS}` : `${dir}.step-${step}`;
  await rm(aside, { recursive: true, force: true });
  await rename(dir, aside);
}

/** After a save: drops DIR.previous and all but the newest `keep - 1` older checkpoints. */
export async function pruneCheckpoints(dir: string, keep: number): Promise<void> {
  await rm(`${dir}${PREVIOUS}`, { recursive: true, force: true });
  for (const older of (await olderCheckpoints(dir)).slice(Math.max(0, keep - 1)))
    await rm(older.path, { recursive: true, force: true });
}

/**
 * The newest whole checkpoint among `dir`, DIR.previous and DIR.step-N: the first whose files match its
 * manifest. Each one skipped is reported through `log`; none whole is a CheckpointError listing them.
 */
export async function newestWholeCheckpoint(dir: string, log: (line: string) => void): Promise<string> {
  const candidates = [dir, `${dir}${PREVIOUS}`, ...(await olderCheckpoints(dir)).map((older) => older.path)];
  const problems: string[] = [];
  for (const candidate of candidates) {
    if (
      !(await exists(join(candidate, "config.json"))) ||
      !(await exists(join(candidate, "model.safetensors")))
    )
      continue;
    try {
      await verifyManifest(candidate);
      if (problems.length > 0) log(`resuming from the older checkpoint ${candidate}`);
      return candidate;
    } catch (error) {
      const problem = (error as Error).message;
      problems.push(problem);
      log(`skipping checkpoint ${candidate}: ${problem}`);
    }
  }
  throw new CheckpointError(
    dir,
    problems.length === 0
      ? "not a checkpoint (no config.json + model.safetensors here or in checkpoint/)"
      : `no whole checkpoint to resume from (${problems.join("; ")})`,
  );
}
