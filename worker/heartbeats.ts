// Starting and stopping a worker's heartbeat thread (heartbeat-thread.ts). It starts before the worker
// reports ready, so the coordinator hears it from the first moment it counts.
import { Worker as Thread } from "node:worker_threads";
import { UserError } from "../shared/errors.js";
import type { HeartbeatThreadInput, HeartbeatThreadMessage } from "./heartbeat-messages.js";

const START_TIMEOUT_MS = 30_000;

export interface Heartbeats {
  stop(): Promise<void>;
}

export async function startHeartbeats(input: HeartbeatThreadInput): Promise<Heartbeats> {
  const thread = new Thread(new URL("./heartbeat-thread.js", import.meta.url), { workerData: input });
  const exited = new Promise<void>((resolve) => thread.once("exit", () => resolve()));
  await new Promise<void>((resolve, reject) => {
    const fail = (why: string) => {
      clearTimeout(timer);
      void thread.terminate();
      reject(new UserError(`${input.name}: heartbeats could not start: ${why}`));
    };
    const timer = setTimeout(
      () => fail(`no NATS connection within ${START_TIMEOUT_MS} ms`),
      START_TIMEOUT_MS,
    );
    thread.once("error", (error) => fail(error.message));
    thread.once("message", (message: HeartbeatThreadMessage) => {
      if (message.type === "failed") return fail(message.message);
      clearTimeout(timer);
      resolve();
    });
  });
  // Heartbeats never keep a finished worker alive.
  thread.unref();
  return {
    stop: async () => {
      thread.postMessage("stop");
      const timer = setTimeout(() => void thread.terminate(), 2_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
