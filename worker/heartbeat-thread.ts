// A worker's heartbeats, from a thread of their own with a NATS connection of their own. A training step's
// compute is synchronous and holds the worker's main thread for as long as it takes; heartbeats sent from
// there would stop during every long step, so the coordinator could tell a lost worker from a busy one only
// after the longest compute. From this thread they keep coming while the process lives, and stop within a
// period of its death (kill -9, OOM kill): the coordinator notices in --heartbeat-timeout-ms.
import { parentPort, workerData } from "node:worker_threads";
import { connectToNats } from "../shared/nats/connect.js";
import { encodeMessage } from "../shared/protocol.js";
import type { HeartbeatThreadInput, HeartbeatThreadMessage } from "./heartbeat-messages.js";

const { nats, subject, rank, periodMs, name } = workerData as HeartbeatThreadInput;
const parent = parentPort;
if (parent === null) throw new Error("heartbeat-thread.ts runs only as a worker thread");
const post = (message: HeartbeatThreadMessage) => parent.postMessage(message);

try {
  const nc = await connectToNats(nats, { name: `${name}-heartbeat`, maxReconnectAttempts: -1 });
  const beat = encodeMessage({ type: "heartbeat", rank });
  const timer = setInterval(() => nc.publish(subject, beat), periodMs);
  nc.publish(subject, beat);
  post({ type: "started" });
  parent.on("message", () => {
    clearInterval(timer);
    void nc.close().finally(() => process.exit(0));
  });
} catch (error) {
  post({ type: "failed", message: error instanceof Error ? error.message : String(error) });
}
