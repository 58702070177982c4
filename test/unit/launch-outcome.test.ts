import assert from "node:assert/strict";
import { test } from "node:test";
import { launchOutcome, type EndedProcess } from "../../coordinator/launch-outcome.js";
import type { ProcessEnd } from "../../coordinator/launched-process.js";

function ended(name: string, end: ProcessEnd, endedAtMs: number, killedByLaunch = false): EndedProcess {
  return { name, end, endedAtMs, killedByLaunch };
}
const ok: ProcessEnd = { kind: "exited", code: 0 };
const two: ProcessEnd = { kind: "exited", code: 2 };
const sigkill: ProcessEnd = { kind: "killed", signal: "SIGKILL" };

test("launch outcome - everyone exited 0: exit 0, nothing to say", () => {
  assert.deepEqual(launchOutcome(ended("coordinator", ok, 3), [ended("w0", ok, 4), ended("w1", ok, 4)]), {
    status: 0,
    line: undefined,
  });
});

test("launch outcome - a killed worker is named first and its 128 + signal is the status", () => {
  const outcome = launchOutcome(ended("coordinator", two, 20), [
    ended("w0", two, 21),
    ended("w1", sigkill, 5),
  ]);
  assert.equal(outcome.status, 137);
  assert.equal(outcome.line, "launch: w1 was killed by SIGKILL first; the coordinator then exited 2");
});

test("launch outcome - the coordinator failing first is named alone", () => {
  const outcome = launchOutcome(ended("coordinator", sigkill, 5), [
    ended("w0", two, 9),
    ended("w1", sigkill, 12, true),
  ]);
  assert.deepEqual(outcome, { status: 137, line: "launch: the coordinator was killed by SIGKILL" });
});

test("launch outcome - the coordinator exited 0 after losing a worker: exit 0, the loss mentioned", () => {
  const outcome = launchOutcome(ended("coordinator", ok, 30), [ended("w0", ok, 31), ended("w1", sigkill, 5)]);
  assert.deepEqual(outcome, {
    status: 0,
    line: "launch: the job finished (w1 was killed by SIGKILL along the way)",
  });
});

test("launch outcome - workers launch killed after the coordinator's exit are not blamed", () => {
  const outcome = launchOutcome(ended("coordinator", two, 5), [ended("w0", sigkill, 20, true)]);
  assert.deepEqual(outcome, { status: 2, line: "launch: the coordinator exited 2" });
});

test("launch outcome - a coordinator launch had to kill says so", () => {
  const outcome = launchOutcome(ended("coordinator", sigkill, 5, true), []);
  assert.deepEqual(outcome, {
    status: 137,
    line: "launch: the coordinator was killed by SIGKILL (stopped by launch)",
  });
});
