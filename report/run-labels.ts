// The name each run goes by in legends and tables: its directory's basename, lengthened by parent
// directories where two runs would otherwise share one (runs/a/it and runs/b/it → a/it, b/it).
import { sep } from "node:path";

export function runLabels(dirs: readonly string[]): string[] {
  const parts = dirs.map((dir) => dir.split(sep).filter((part) => part !== ""));
  const depths = dirs.map(() => 1);
  const label = (index: number) => (parts[index] ?? []).slice(-(depths[index] ?? 1)).join("/") || "/";
  for (;;) {
    const labels = dirs.map((_, index) => label(index));
    // Lengthen a label while another directory shares it (not the same directory given twice).
    const clashing = labels
      .map((text, index) => ({ text, index }))
      .filter(({ text, index }) => labels.some((other, at) => other === text && dirs[at] !== dirs[index]))
      .filter(({ index }) => (depths[index] ?? 1) < (parts[index]?.length ?? 0));
    if (clashing.length === 0) break;
    for (const { index } of clashing) depths[index] = (depths[index] ?? 1) + 1;
  }
  // The same directory given twice: number the repeats.
  const seen = new Map<string, number>();
  return dirs.map((_, index) => {
    const text = label(index);
    const count = (seen.get(text) ?? 0) + 1;
    seen.set(text, count);
    return count === 1 ? text : `${text} (${count})`;
  });
}
