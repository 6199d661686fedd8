import http from "node:http";
import type net from "node:net";
import type { WorkerMetrics } from "./metrics.js";

/** What /readyz reports. */
export interface Readiness {
  /** Listeners bound and a first table applied, and not stopping. */
  ready: boolean;
  coordinatorConnected: boolean;
  version: number;
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}

/** The worker's OPS_PORT: /healthz, /readyz and /metrics, nothing else. */
export async function startOpsServer(
  host: string,
  port: number,
  metrics: WorkerMetrics,
  readiness: () => Readiness,
): Promise<{ address: net.AddressInfo; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      json(res, 405, { title: "Method Not Allowed", status: 405 });
    } else if (path === "/healthz") {
      json(res, 200, { status: "ok" });
    } else if (path === "/readyz") {
      const state = readiness();
      json(res, state.ready ? 200 : 503, {
        coordinator: state.coordinatorConnected ? "connected" : "disconnected",
        version: state.version,
      });
    } else if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => {
          res.writeHead(200, { "content-type": metrics.registry.contentType });
          res.end(text);
        },
        () => json(res, 500, { title: "Internal Server Error", status: 500 }),
      );
    } else {
      json(res, 404, { title: "Not Found", status: 404, detail: `No such path: ${path}` });
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host, port }, () => resolve());
  });
  return {
    address: server.address() as net.AddressInfo,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
