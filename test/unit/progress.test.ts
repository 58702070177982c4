import assert from "node:assert/strict";
import { test } from "node:test";
import { formatDuration, Progress, type ProgressStream } from "../../coordinator/progress.js";
import type { StepRecord } from "../../shared/metrics/records.js";
import { terminalStyle } from "../../shared/terminal.js";

class Captured implements ProgressStream {
  text = "";
  constructor(readonly isTTY: boolean) {}
  write(text: string): boolean {
    this.text += text;
    return true;
  }
  get lines(): string[] {
    return this.text.split("\n").filter(Boolean);
  }
}

function record(step: number): StepRecord {
  return {
    step,
    lr: 1e-3,
    train_loss: 2.5,
    train_output_loss: 3.25,
    tokens: 1000,
    loss_tokens: 100,
    examples: 8,
    grad_norm: 1,
    tokens_per_s: 4512.4,
    step_s: 0.25,
    flops: 1e9,
    phase_s: { data: 0, forward_backward: 0.2, allreduce: 0, wait: 0, optimizer: 0.05 },
    rank_compute_s: [0.2],
  };
}

test("progress - without a terminal: a line at the first step and every 5%, plain text, no escape codes", () => {
  const stream = new Captured(false);
  let now = 0;
  const progress = new Progress(100, 0, { stream, nowMs: () => now });
  for (let step = 1; step <= 100; step++) {
    now += 100; // 0.1 s a step: milestones, not the 30 s rule, decide
    progress.step(record(step));
  }
  progress.close();
  const steps = stream.lines.map((line) => Number(/^step (\d+)\/100/.exec(line)?.[1]));
  assert.deepEqual(
    steps,
    [1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 65, 70, 75, 80, 85, 90, 95, 100],
  );
  assert.doesNotMatch(stream.text, /\x1b|\r/);
  assert.match(
    stream.lines[1] ?? "",
    /^step 5\/100 5% · ETA 10s · 4,512 tok\/s · loss 2\.5000 \(output 3\.2500\)$/,
  );
});

test("progress - without a terminal: a long step still prints a line every 30 s, saying which step it is in", () => {
  const stream = new Captured(false);
  let now = 0;
  const progress = new Progress(1000, 0, { stream, nowMs: () => now });
  progress.step(record(1));
  now += 20_000;
  progress.tick();
  assert.equal(stream.lines.length, 1, "20 s of quiet is allowed");
  now += 11_000;
  progress.tick();
  assert.equal(stream.lines.length, 2);
  assert.match(stream.lines[1] ?? "", /^step 1\/1000 0% · ETA .* · in step 2$/);
  now += 31_000;
  progress.step(record(2)); // not a milestone, but 31 s since the last line
  assert.equal(stream.lines.length, 3);
  progress.close();
});

test("progress - an eval shows on its own line and then in the status: held-out loss and gap", () => {
  const stream = new Captured(false);
  const progress = new Progress(20, 0, { stream, nowMs: () => 0 });
  progress.eval({
    step: 10,
    eval_output_loss: 1.5,
    train_eval_output_loss: 1.25,
    overfitting_gap: 0.25,
    eval_s: 1,
  });
  progress.step(record(20));
  progress.close();
  assert.match(stream.lines[0] ?? "", /^eval @10: held-out output loss 1\.5000, train 1\.2500, gap 0\.2500$/);
  assert.match(stream.lines[1] ?? "", /held-out 1\.5000 gap 0\.2500 @10$/);
});

test("progress - on a terminal: one line redrawn in place at most once a second, with a bar", () => {
  const stream = new Captured(true);
  let now = 0;
  const progress = new Progress(10, 0, {
    stream,
    nowMs: () => now,
    style: { isTerminal: true, colour: false },
  });
  for (let step = 1; step <= 9; step++) {
    now += 300;
    progress.step(record(step));
  }
  const redraws = stream.text.split("\r").length - 1;
  assert.ok(redraws >= 2 && redraws <= 3, `${redraws} redraws in 2.7 s`);
  assert.doesNotMatch(stream.text, /\n/, "no new lines while it runs");
  now += 10;
  progress.step(record(10)); // the last step always draws
  progress.close();
  assert.match(stream.text, /\r█{20} step 10\/10 100%/);
  assert.match(stream.text, /\n$/);
  assert.doesNotMatch(stream.text, /\x1b\[3/, "no colour when colour is off");
});

test("terminal - colour only on a terminal, and never with NO_COLOR", () => {
  assert.deepEqual(terminalStyle({ isTTY: true }, {}), { isTerminal: true, colour: true });
  assert.deepEqual(terminalStyle({ isTTY: true }, { NO_COLOR: "1" }), { isTerminal: true, colour: false });
  assert.deepEqual(terminalStyle({ isTTY: false }, {}), { isTerminal: false, colour: false });
  assert.deepEqual(terminalStyle({}, {}), { isTerminal: false, colour: false });
});

test("progress - durations read as a person would say them", () => {
  assert.equal(formatDuration(42), "42s");
  assert.equal(formatDuration(75), "1m15s");
  assert.equal(formatDuration(4000), "1h06m");
  assert.equal(formatDuration(NaN), "?");
});
