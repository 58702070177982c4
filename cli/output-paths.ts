// Paths a command will create: refused in one line when a file stands where a directory must be, before
// anything is written (otherwise mkdir fails deep inside with ENOTDIR or EEXIST).
import { stat } from "node:fs/promises";
import { dirname, isAbsolute, relative, resolve } from "node:path";
import { OptionError } from "../shared/errors.js";

export async function kindOf(path: string): Promise<"dir" | "file" | "none"> {
  const info = await stat(path).catch(() => undefined);
  return info === undefined ? "none" : info.isDirectory() ? "dir" : "file";
}

/** `path` as the user would recognise it: relative if they gave a relative path. */
function shown(path: string, given: string): string {
  return isAbsolute(given) ? path : relative(process.cwd(), path) || ".";
}

/** A directory `--flag` names: neither a file nor under one. */
export async function checkDirectoryPath(flag: string, given: string): Promise<void> {
  const target = resolve(given);
  for (let path = target; ; path = dirname(path)) {
    const kind = await kindOf(path);
    if (kind === "dir") return;
    if (kind === "file") {
      throw new OptionError(
        flag,
        path === target
          ? `${given} is a file, not a directory`
          : `${given} is under ${shown(path, given)}, which is a file, not a directory`,
      );
    }
    if (dirname(path) === path) return;
  }
}

/** A file `--flag` names: not a directory, and not under a file. */
export async function checkOutputFile(flag: string, given: string): Promise<void> {
  if ((await kindOf(given)) === "dir") throw new OptionError(flag, `${given} is a directory, not a file`);
  const parent = dirname(resolve(given));
  for (let path = parent; ; path = dirname(path)) {
    const kind = await kindOf(path);
    if (kind === "dir") return;
    if (kind === "file")
      throw new OptionError(
        flag,
        `${given} is under ${shown(path, given)}, which is a file, not a directory`,
      );
    if (dirname(path) === path) return;
  }
}
