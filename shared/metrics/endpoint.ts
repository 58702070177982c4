// The HTTP side of a process's metrics: GET /metrics (Prometheus text format) and GET /healthz, which
// answers 200 while the process is healthy and 503 once it is stopping or its job has failed, so a
// readiness probe takes it out of service and a person sees why.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import { UserError } from "../errors.js";

export type HealthState =
  | { readonly status: "ok" }
  | { readonly status: "stopping"; readonly reason: string }
  | { readonly status: "failed"; readonly reason: string };

/** What /healthz reports; the process moves it forward, never back to ok. */
export class Health {
  private current: HealthState = { status: "ok" };

  get state(): HealthState {
    return this.current;
  }

  stopping(reason: string): void {
    if (this.current.status === "ok") this.current = { status: "stopping", reason };
  }

  failed(reason: string): void {
    if (this.current.status !== "failed") this.current = { status: "failed", reason };
  }
}

export interface MetricsEndpoint {
  /** http://host:port (the port the OS picked when asked for 0). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

function urlHost(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

export async function startMetricsEndpoint(
  registry: Registry,
  health: Health,
  host: string,
  port: number,
): Promise<MetricsEndpoint> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response.writeHead(405, { allow: "GET, HEAD" }).end();
    } else if (path === "/metrics") {
      registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(`collecting metrics failed: ${String(error)}\n`),
      );
    } else if (path === "/healthz") {
      const state = health.state;
      const body = state.status === "ok" ? "ok\n" : `${state.status}: ${state.reason}\n`;
      response.writeHead(state.status === "ok" ? 200 : 503, { "content-type": "text/plain" }).end(body);
    } else {
      response.writeHead(404, { "content-type": "text/plain" }).end("imtrain serves /metrics and /healthz\n");
    }
  });
  // Scrapes are short; a client that stalls must not hold a socket open.
  server.requestTimeout = 10_000;
  server.headersTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) =>
      reject(
        new UserError(
          `--metrics-port ${port} on ${host}: ${error.code === "EADDRINUSE" ? "already in use" : error.message}`,
          { cause: error },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  // Metrics must never keep a finished process alive.
  server.unref();
  return {
    url: `http://${urlHost(host)}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
