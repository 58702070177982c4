// Progress on a terminal: one redrawn line with a bar; elsewhere (CI, logs, pipes) a plain line every
// `everySteps` steps so log files stay readable.
export class Progress {
  private readonly isTerminal: boolean;
  private readonly everySteps: number;

  constructor(
    private readonly totalSteps: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.isTerminal = stream.isTTY === true;
    this.everySteps = Math.max(1, Math.round(totalSteps / 20));
  }

  update(step: number, text: string): void {
    if (this.isTerminal) {
      const width = 24;
      const filled = Math.round((width * step) / this.totalSteps);
      this.stream.write(
        `\r[${"=".repeat(filled)}${" ".repeat(width - filled)}] ${step}/${this.totalSteps} ${text}\x1b[K`,
      );
      if (step === this.totalSteps) this.stream.write("\n");
    } else if (step % this.everySteps === 0 || step === this.totalSteps) {
      this.stream.write(`step ${step}/${this.totalSteps} ${text}\n`);
    }
  }

  /** A line that must not be overwritten by the bar. */
  note(line: string): void {
    this.stream.write(this.isTerminal ? `\r${line}\x1b[K\n` : `${line}\n`);
  }
}
