// Where a run writes, and the rules that keep one run from clobbering another:
//   - a new run never writes into a directory that already holds a run (checkpoint/, metrics.jsonl or
//     summary.json) unless --overwrite is given, and then the old run's outputs are deleted first;
//   - without --out, a run gets a fresh directory runs/<UTC time>-<name>, never reused;
//   - --resume DIR continues in DIR (an --out naming another directory is an error), and resuming a run
//     that already holds all its steps says so and changes nothing.
// Every command that writes a run (train, coordinator, launch, demo) opens its directory here first.
import { existsSync, mkdirSync, rmdirSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Log } from "../shared/data/load.js";
import { OptionError } from "../shared/errors.js";
import { isCheckpointDir, readModelConfig } from "../shared/model/checkpoint.js";
import type { TrainOptions } from "../shared/options.js";
import { checkDirectoryPath, kindOf } from "./output-paths.js";

/** The flags that choose a run directory. */
export interface RunDirFlags {
  out?: string | undefined;
  resume?: string | undefined;
  overwrite?: boolean | undefined;
}

export interface RunDir {
  readonly dir: string;
  /** default: a fresh runs/… directory made for this run; out: --out; resume: --resume's run. */
  readonly origin: "default" | "out" | "resume";
  /** --overwrite over a directory that holds a run: its outputs go when the run starts. */
  readonly replacesRun: boolean;
}

/** Where fresh run directories go, relative to the working directory. */
export const RUNS_DIR = "runs";

/** A run's outputs: any of the first three means the directory holds a run. */
const RUN_MARKERS = ["checkpoint", "metrics.jsonl", "summary.json"];
const RUN_OUTPUTS = [...RUN_MARKERS, "checkpoint.partial", "checkpoint.previous", "handoff", "report.html"];

async function holdsRun(dir: string): Promise<boolean> {
  for (const marker of RUN_MARKERS) if ((await kindOf(join(dir, marker))) !== "none") return true;
  return false;
}

/** --resume DIR names a run directory, or its checkpoint/ (whose parent is then the run directory). */
async function resumedRunDir(given: string): Promise<string> {
  const kind = await kindOf(given);
  if (kind === "none") throw new OptionError("resume", `${given}: no such directory`);
  if (kind === "file") throw new OptionError("resume", `${given} is a file, not a run directory`);
  if (await isCheckpointDir(join(given, "checkpoint"))) return given;
  if (await isCheckpointDir(given)) {
    if (basename(resolve(given)) === "checkpoint") return dirname(given);
    throw new OptionError(
      "resume",
      `${given} is a checkpoint outside a run directory; give the run directory holding checkpoint/, or start a new run from it with --model`,
    );
  }
  throw new OptionError(
    "resume",
    `${given} is not a run directory (no checkpoint/ with config.json and model.safetensors)`,
  );
}

function utcStamp(now: Date): string {
  return now
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\.\d+Z$/, "Z"); // 20250131T235959Z
}

/**
 * Makes runs/<UTC time>-<name> (then -2, -3, … if taken) at once, so two runs started in the same second
 * cannot share it. If the process ends with it still empty (a bad flag or data file), it is removed again,
 * with runs/ if this made that too.
 */
function claimFreshDir(name: string): string {
  const madeParent = !existsSync(RUNS_DIR);
  mkdirSync(RUNS_DIR, { recursive: true });
  const base = join(RUNS_DIR, `${utcStamp(new Date())}-${name.replace(/[^A-Za-z0-9._-]+/g, "-")}`);
  for (let attempt = 1; ; attempt++) {
    const dir = attempt === 1 ? base : `${base}-${attempt}`;
    try {
      mkdirSync(dir);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw error;
    }
    process.once("exit", () => {
      for (const empty of madeParent ? [dir, RUNS_DIR] : [dir]) {
        try {
          rmdirSync(empty); // fails, as it should, once the run has written anything
        } catch {
          return;
        }
      }
    });
    return dir;
  }
}

/**
 * Checks the run directory the flags choose, before anything is written: `name` names a fresh default
 * directory; `runsIn` lists the run directories under it (demo keeps two).
 */
export async function openRunDir(
  flags: RunDirFlags,
  name: string,
  runsIn: (dir: string) => readonly string[] = (dir) => [dir],
): Promise<RunDir> {
  if (flags.resume !== undefined) {
    const dir = await resumedRunDir(flags.resume);
    if (flags.out !== undefined && resolve(flags.out) !== resolve(dir))
      throw new OptionError(
        "out",
        `${flags.out} is not the directory of the run --resume ${flags.resume} continues (${dir}); drop --out`,
      );
    return { dir, origin: "resume", replacesRun: false };
  }
  if (flags.out === undefined) return { dir: claimFreshDir(name), origin: "default", replacesRun: false };
  await checkDirectoryPath("out", flags.out);
  const runs = runsIn(flags.out);
  const existing: string[] = [];
  for (const run of runs) if (await holdsRun(run)) existing.push(run);
  const [first] = existing;
  if (first !== undefined && flags.overwrite !== true) {
    const resumable = first === flags.out ? `, --resume ${first} to continue it` : "";
    throw new OptionError(
      "out",
      `${first} already holds a run; pass --overwrite to replace it${resumable}, or choose another --out`,
    );
  }
  return { dir: flags.out, origin: "out", replacesRun: first !== undefined };
}

/** The step a run's checkpoint has reached; undefined if it records none. */
async function checkpointStep(runDir: string): Promise<number | undefined> {
  const { json } = await readModelConfig(join(runDir, "checkpoint", "config.json"));
  const step = (json["imtrain"] as { trainer?: { step?: unknown } } | undefined)?.trainer?.step;
  return typeof step === "number" ? step : undefined;
}

/** With --epochs the step count depends on the data: the run's own summary has it, for the same --epochs. */
async function plannedSteps(runDir: string, options: TrainOptions): Promise<number | undefined> {
  if (options.steps !== undefined) return options.steps;
  try {
    const summary = JSON.parse(await readFile(join(runDir, "summary.json"), "utf8")) as {
      steps?: unknown;
      options?: { epochs?: unknown };
    };
    return summary.options?.epochs === options.epochs && typeof summary.steps === "number"
      ? summary.steps
      : undefined;
  } catch {
    return undefined;
  }
}

/** Prints where the run writes: a fresh directory's name is news to the user. */
export function announceRunDir(runDir: RunDir, log: Log): void {
  const how = {
    default: "new",
    out: runDir.replacesRun ? "--overwrite: replacing the run in it" : "new",
    resume: "resuming",
  }[runDir.origin];
  log(`run directory ${runDir.dir} (${how})`);
}

/**
 * Last step before a run starts writing. Resuming a run that already holds all its steps says so and
 * returns false: nothing to do, nothing rewritten. Otherwise --overwrite deletes the old run's outputs
 * (so its checkpoint cannot be mistaken for this run's), the directory is announced, and it returns true.
 */
export async function startRunDir(runDir: RunDir, options: TrainOptions, log: Log): Promise<boolean> {
  if (runDir.origin === "resume") {
    const step = await checkpointStep(runDir.dir);
    const planned = await plannedSteps(runDir.dir, options);
    if (step !== undefined && planned !== undefined) {
      if (step > planned)
        throw new OptionError(
          "steps",
          `${planned} is fewer than the ${step} steps the resumed run completed`,
        );
      if (step === planned) {
        log(
          `${runDir.dir}: the run already holds all ${planned} steps (its checkpoint is at step ${step}); nothing to do (raise --steps to train further)`,
        );
        return false;
      }
    }
  }
  if (runDir.replacesRun)
    for (const output of RUN_OUTPUTS) await rm(join(runDir.dir, output), { recursive: true, force: true });
  announceRunDir(runDir, log);
  return true;
}

/** A fresh directory's name: the job's, unless it is the default job, then the command's. */
export function runDirName(command: string, job: string): string {
  return job === "default" ? command : job;
}
