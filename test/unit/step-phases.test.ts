import assert from "node:assert/strict";
import { test } from "node:test";
import { stepPhases } from "../../coordinator/step-phases.js";

test("step phases - the fastest rank's wait is the slowest rank's extra compute, taken out of its all-reduce", () => {
  const phases = stepPhases([
    { data: 0.1, forward_backward: 1.0, allreduce: 0.7, optimizer: 0.05 }, // compute 1.1: slowest
    { data: 0.1, forward_backward: 0.5, allreduce: 1.2, optimizer: 0.05 }, // compute 0.6: waits 0.5
  ]);
  assert.deepEqual(phases.rank_compute_s, [1.1, 0.6]);
  const [slow, fast] = phases.rank_phase_s;
  assert.ok(slow && fast);
  assert.equal(slow.wait, 0);
  assert.equal(slow.allreduce, 0.7);
  assert.ok(Math.abs(fast.wait - 0.5) < 1e-12);
  assert.ok(Math.abs(fast.allreduce - 0.7) < 1e-12);
  assert.ok(Math.abs(phases.phase_s.wait - 0.25) < 1e-12, "the mean over ranks");
  assert.ok(Math.abs(phases.phase_s.forward_backward - 0.75) < 1e-12);
});

test("step phases - a wait never exceeds the all-reduce it was measured in (clock noise leaves allreduce ≥ 0)", () => {
  const phases = stepPhases([
    { data: 0, forward_backward: 2, allreduce: 0.1, optimizer: 0 },
    { data: 0, forward_backward: 1, allreduce: 0.3, optimizer: 0 }, // would wait 1 s, but its all-reduce took 0.3
  ]);
  const fast = phases.rank_phase_s[1];
  assert.ok(fast);
  assert.equal(fast.wait, 0.3);
  assert.equal(fast.allreduce, 0);
});

test("step phases - one rank never waits", () => {
  const phases = stepPhases([{ data: 0.01, forward_backward: 0.2, allreduce: 0.0001, optimizer: 0.02 }]);
  assert.equal(phases.phase_s.wait, 0);
  assert.equal(phases.phase_s.allreduce, 0.0001);
});
