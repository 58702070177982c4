// Every finished (or stopped) run writes OUT/report.html. A report that cannot be written is one log
// line, never a failed run: the run's own outputs are already on disk.
import { join } from "node:path";
import type { Log } from "../shared/data/load.js";
import { writeRunReport } from "../report/index.js";

/** Writes the report of `runDirs` to `file` (default: the one run's report.html); undefined if it failed. */
export async function writeReportOrSay(
  runDirs: readonly string[],
  log: Log,
  file = join(runDirs[0] ?? ".", "report.html"),
): Promise<string | undefined> {
  try {
    return await writeRunReport(runDirs, file);
  } catch (error) {
    log(
      `report not written: ${(error as Error).message} (the run's metrics.jsonl and checkpoint are intact)`,
    );
    return undefined;
  }
}
