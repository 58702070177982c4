// How the report's table writes numbers; "—" for what a run does not have.
export const MISSING = "—";

const known = <T>(value: T | undefined, show: (value: T) => string): string =>
  value === undefined ? MISSING : show(value);

export const formatLoss = (value: number | undefined) => known(value, (loss) => loss.toFixed(4));

export const formatGap = (value: number | undefined) =>
  known(value, (gap) => (gap > 0 ? "+" : gap < 0 ? "−" : "") + Math.abs(gap).toFixed(4));

export const formatInteger = (value: number | undefined) =>
  known(value, (rate) => Math.round(rate).toLocaleString("en-US"));

export const formatRatio = (value: number | undefined) => known(value, (ratio) => ratio.toFixed(2));

export const formatWeight = (value: number | undefined) => known(value, (weight) => String(weight));

/** λ with the paper's name for the two ends: IT (loss on outputs only) and IM (on instructions too). */
export const formatLossMode = (lambda: number | undefined) =>
  known(lambda, (weight) => (weight === 0 ? "IT · λ 0" : weight === 1 ? "IM · λ 1" : `λ ${weight}`));

export const formatCount = (value: number | undefined) =>
  known(value, (count) => {
    if (count >= 1e9) return `${(count / 1e9).toPrecision(3)} B`;
    if (count >= 1e6) return `${(count / 1e6).toPrecision(3)} M`;
    if (count >= 1e3) return `${(count / 1e3).toPrecision(3)} k`;
    return String(count);
  });

export const formatSteps = (completed: number | undefined, planned: number | undefined) =>
  completed === undefined && planned === undefined
    ? MISSING
    : `${formatInteger(completed)} / ${formatInteger(planned)}`;

export const formatDuration = (value: number | undefined) =>
  known(value, (seconds) => {
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, "0")} s`;
    return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, "0")} min`;
  });

/** 2025-01-31 14:05 UTC */
export const formatTime = (time: Date) => time.toISOString().slice(0, 16).replace("T", " ") + " UTC";
