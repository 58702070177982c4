import assert from "node:assert/strict";
import { test } from "node:test";
import { forwardedArgs } from "../../cli/commands/launch.js";

test("launch - its own flags are not forwarded to the coordinator, in any spelling", () => {
  const args = [
    "--workers",
    "2",
    "--nats",
    "nats://a:4222",
    "--metrics-port=9400",
    "--metricsHost",
    "0.0.0.0",
    "--peak-tflops",
    "312",
    "--metrics-linger-s=30",
    "--devices=gpu",
    "--data",
    "d.jsonl",
    "--metrics-every",
    "3", // not a launch flag: forwarded (and refused by the coordinator if unknown)
  ];
  assert.deepEqual(forwardedArgs(args), ["--workers", "2", "--data", "d.jsonl", "--metrics-every", "3"]);
});
