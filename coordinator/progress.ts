// Progress a person reads. On a terminal: one line redrawn at most every second (and at least every two,
// by a timer, so ETA and rate stay live through a long step): step, %, ETA, tokens/s, loss, and held-out
// loss and gap at the last eval. Elsewhere (CI, logs, pipes): a plain line at the first step, every 5% of
// the run, and whenever 30 s have passed without one, so a log always shows the job is alive.
import { paint, terminalStyle, type TerminalStyle } from "../shared/terminal.js";
import type { EvalRecord, StepRecord } from "../shared/metrics/records.js";

const REDRAW_MS = 1_000;
const TICK_MS = 2_000;
const QUIET_MS = 30_000;

export interface ProgressStream {
  readonly isTTY?: boolean;
  write(text: string): unknown;
}

/** 75 s → "1m15s"; 4000 s → "1h06m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "?";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`;
}

export interface ProgressOutput {
  readonly stream?: ProgressStream;
  /** Default: from the stream and the environment (shared/terminal.ts). */
  readonly style?: TerminalStyle;
  /** Milliseconds on a monotonic clock (tests pass their own). */
  readonly nowMs?: () => number;
}

export class Progress {
  private readonly stream: ProgressStream;
  private readonly style: TerminalStyle;
  private readonly nowMs: () => number;
  private readonly milestoneSteps: number;
  private readonly startedMs: number;
  private lastWriteMs = -Infinity;
  private last: StepRecord | undefined;
  private lastEval: EvalRecord | undefined;
  private done: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly totalSteps: number,
    private readonly startStep: number,
    output: ProgressOutput = {},
  ) {
    this.stream = output.stream ?? process.stderr;
    this.style = output.style ?? terminalStyle(this.stream);
    this.nowMs = output.nowMs ?? (() => performance.now());
    this.startedMs = this.nowMs();
    this.milestoneSteps = Math.max(1, Math.round(totalSteps / 20));
    this.done = startStep;
    this.timer = setInterval(() => this.tick(), this.style.isTerminal ? TICK_MS : QUIET_MS / 3);
    this.timer.unref();
  }

  step(record: StepRecord): void {
    this.last = record;
    this.done = record.step;
    const now = this.nowMs();
    if (this.style.isTerminal) {
      if (now - this.lastWriteMs >= REDRAW_MS || record.step === this.totalSteps) this.redraw(now);
    } else if (
      record.step === this.startStep + 1 ||
      record.step % this.milestoneSteps === 0 ||
      record.step === this.totalSteps ||
      now - this.lastWriteMs >= QUIET_MS
    ) {
      this.plain(now);
    }
  }

  eval(record: EvalRecord): void {
    this.lastEval = record;
    this.note(
      `eval @${record.step}: held-out output loss ${record.eval_output_loss.toFixed(4)}, train ${record.train_eval_output_loss.toFixed(4)}, gap ${record.overfitting_gap.toFixed(4)}`,
    );
  }

  /** A line that must not be overwritten by the redrawn one. */
  note(line: string): void {
    this.stream.write(this.style.isTerminal ? `\r${line}\x1b[K\n` : `${line}\n`);
    if (this.style.isTerminal && this.last) this.redraw(this.nowMs());
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.style.isTerminal && this.lastWriteMs > -Infinity) this.stream.write("\n");
  }

  /** "step 120/400 30% · ETA 2m10s · 4,512 tok/s · loss 1.2345 (output 1.1111) · held-out 1.5012 gap 0.3010 @100" */
  status(nowMs: number): string {
    const done = this.done;
    const percent = Math.floor((100 * done) / this.totalSteps);
    const elapsed = (nowMs - this.startedMs) / 1000;
    const stepsHere = done - this.startStep;
    const eta = stepsHere > 0 ? ((this.totalSteps - done) * elapsed) / stepsHere : NaN;
    const parts = [`step ${done}/${this.totalSteps} ${percent}%`, `ETA ${formatDuration(eta)}`];
    if (this.last) {
      parts.push(
        `${Math.round(this.last.tokens_per_s).toLocaleString("en-US")} tok/s`,
        `loss ${this.last.train_loss.toFixed(4)} (output ${this.last.train_output_loss.toFixed(4)})`,
      );
    }
    if (this.lastEval) {
      parts.push(
        `held-out ${this.lastEval.eval_output_loss.toFixed(4)} gap ${this.lastEval.overfitting_gap.toFixed(4)} @${this.lastEval.step}`,
      );
    }
    return parts.join(" · ");
  }

  /** What the timer does: redraw a terminal's line, or print a line if the log has been quiet for 30 s. */
  tick(): void {
    const now = this.nowMs();
    if (this.style.isTerminal) {
      if (this.last) this.redraw(now);
    } else if (now - this.lastWriteMs >= QUIET_MS) {
      this.plain(now, this.done < this.totalSteps ? ` · in step ${this.done + 1}` : "");
    }
  }

  private redraw(now: number): void {
    const width = 20;
    const filled = Math.round((width * this.done) / this.totalSteps);
    const bar =
      paint(this.style, "32", "█".repeat(filled)) + paint(this.style, "2", "░".repeat(width - filled));
    this.stream.write(`\r${bar} ${this.status(now)}\x1b[K`);
    this.lastWriteMs = now;
  }

  private plain(now: number, suffix = ""): void {
    this.stream.write(`${this.status(now)}${suffix}\n`);
    this.lastWriteMs = now;
  }
}
