// A process's metrics endpoint: GET /metrics (Prometheus text) and GET /healthz, served from a thread of
// its own (endpoint-thread.ts) so a scrape is answered even while a synchronous training step holds this
// thread. This side collects the registry when the endpoint asks (between steps, that is) and tells it
// every change of health. A thread that dies, or a collection that fails, is logged, never silent.
import { Worker } from "node:worker_threads";
import type { Registry } from "prom-client";
import { UserError } from "../errors.js";
import type { EndpointThreadInput, EndpointThreadMessage, MainThreadMessage } from "./endpoint-messages.js";
import type { Health } from "./health.js";

export interface MetricsEndpoint {
  /** http://host:port (the port the OS picked when asked for 0). */
  readonly url: string;
  readonly port: number;
  /** Stops serving; idempotent, and immediate when the thread is already gone. */
  close(): Promise<void>;
}

const START_TIMEOUT_MS = 10_000;
const CLOSE_GRACE_MS = 2_000;

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export async function startMetricsEndpoint(
  registry: Registry,
  health: Health,
  host: string,
  port: number,
  log: (line: string) => void = () => {},
): Promise<MetricsEndpoint> {
  const input: EndpointThreadInput = { host, port };
  const thread = new Worker(new URL("./endpoint-thread.js", import.meta.url), { workerData: input });
  let running = true;
  let closing = false;
  let started = false;
  const exited = new Promise<void>((resolve) =>
    thread.on("exit", (code) => {
      running = false;
      if (started && !closing) log(`metrics endpoint stopped (thread exit code ${code}); /metrics is gone`);
      resolve();
    }),
  );
  const send = (message: EndpointThreadMessage) => {
    if (running) thread.postMessage(message);
  };

  let collecting = false;
  let failuresLogged = 0;
  const collect = () => {
    if (collecting) return; // one collection answers every scrape waiting on it
    collecting = true;
    registry
      .metrics()
      .then((text) => send({ type: "snapshot", text, contentType: registry.contentType }))
      .catch((error: unknown) => {
        const message = error instanceof Error ? error.message : String(error);
        if (failuresLogged++ === 0) log(`collecting metrics failed (scrapes get a 500): ${message}`);
        send({ type: "collectFailed", message });
      })
      .finally(() => (collecting = false));
  };

  const bound = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      void thread.terminate();
      reject(
        new UserError(
          `--metrics-port ${port} on ${host}: the endpoint did not start within ${START_TIMEOUT_MS} ms`,
        ),
      );
    }, START_TIMEOUT_MS);
    thread.on("error", (error) => {
      clearTimeout(timer);
      if (started) log(`metrics endpoint thread failed: ${error.message}`);
      reject(new UserError(`metrics endpoint thread failed: ${error.message}`, { cause: error }));
    });
    thread.on("message", (message: MainThreadMessage) => {
      if (message.type === "collect") return collect();
      clearTimeout(timer);
      if (message.type === "listening") return resolve(message.port);
      const why = message.code === "EADDRINUSE" ? "already in use" : message.message;
      if (started) log(`metrics endpoint failed: ${why}`);
      void thread.terminate();
      reject(new UserError(`--metrics-port ${port} on ${host}: ${why}`));
    });
  });
  started = true;
  health.onChange((state) =>
    send({ type: "health", status: state.status, reason: state.status === "ok" ? "" : state.reason }),
  );
  collect(); // a first snapshot, for a scrape that comes during the first step
  // Metrics must never keep a finished process alive.
  thread.unref();
  return {
    url: `http://${urlHost(host)}:${bound}`,
    port: bound,
    close: async () => {
      closing = true;
      if (running) {
        send({ type: "close" });
        const timer = setTimeout(() => void thread.terminate(), CLOSE_GRACE_MS);
        await exited;
        clearTimeout(timer);
      }
      await exited;
    },
  };
}
