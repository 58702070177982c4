// The metrics HTTP server, in its own thread. A training step's compute is synchronous and can hold the
// main thread for seconds (longer than Prometheus's scrape timeout on a big model); this thread always
// answers at once. On a scrape it asks the main thread for a fresh snapshot and waits briefly; if the main
// thread is busy in a step, it serves the last snapshot instead (at most a step old).
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parentPort, workerData } from "node:worker_threads";
import type { EndpointThreadInput, EndpointThreadMessage, MainThreadMessage } from "./endpoint-messages.js";

const FRESH_WAIT_MS = 250;

const { host, port } = workerData as EndpointThreadInput;
const parent = parentPort;
if (parent === null) throw new Error("endpoint-thread.ts runs only as a worker thread");

let snapshot = { text: "", contentType: "text/plain; version=0.0.4; charset=utf-8" };
let collectFailure: string | undefined;
let health: EndpointThreadMessage & { type: "health" } = { type: "health", status: "ok", reason: "" };
let nextRequest = 0;
const waiting = new Map<number, () => void>();

const post = (message: MainThreadMessage) => parent.postMessage(message);

parent.on("message", (message: EndpointThreadMessage) => {
  switch (message.type) {
    case "snapshot":
    case "collectFailed":
      if (message.type === "snapshot") snapshot = { text: message.text, contentType: message.contentType };
      collectFailure = message.type === "collectFailed" ? message.message : undefined;
      for (const done of waiting.values()) done();
      waiting.clear();
      return;
    case "health":
      health = message;
      return;
    case "close":
      server.closeAllConnections();
      server.close(() => process.exit(0));
  }
});

/** Resolves when a snapshot newer than the request arrives, or after FRESH_WAIT_MS with what there is. */
function freshSnapshot(): Promise<void> {
  const id = nextRequest++;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      waiting.delete(id);
      resolve();
    }, FRESH_WAIT_MS);
    waiting.set(id, () => {
      clearTimeout(timer);
      resolve();
    });
    post({ type: "collect" });
  });
}

const server = createServer((request, response) => {
  const path = (request.url ?? "/").split("?")[0];
  if (request.method !== "GET" && request.method !== "HEAD") {
    response.writeHead(405, { allow: "GET, HEAD" }).end();
  } else if (path === "/metrics") {
    void freshSnapshot().then(() => {
      if (collectFailure !== undefined)
        response
          .writeHead(500, { "content-type": "text/plain" })
          .end(`collecting metrics failed: ${collectFailure}\n`);
      else response.writeHead(200, { "content-type": snapshot.contentType }).end(snapshot.text);
    });
  } else if (path === "/healthz") {
    const ok = health.status === "ok";
    const body = ok ? "ok\n" : `${health.status}: ${health.reason}\n`;
    response.writeHead(ok ? 200 : 503, { "content-type": "text/plain" }).end(body);
  } else {
    response.writeHead(404, { "content-type": "text/plain" }).end("imtrain serves /metrics and /healthz\n");
  }
});
// Scrapes are short; a client that stalls must not hold a socket open.
server.requestTimeout = 10_000;
server.headersTimeout = 10_000;
server.once("error", (error: NodeJS.ErrnoException) =>
  post({ type: "failed", code: error.code ?? "", message: error.message }),
);
server.listen(port, host, () => post({ type: "listening", port: (server.address() as AddressInfo).port }));
