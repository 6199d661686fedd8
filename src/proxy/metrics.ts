import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { DenialReason } from "./access.js";

export type TrafficProtocol = "http" | "ws" | "tcp";
export type CodeClass = "1xx" | "2xx" | "3xx" | "4xx" | "5xx";

/** The worker's own metrics (docs/api.md: appproxy_worker_*), in a registry of their own. */
export class WorkerMetrics {
  readonly registry = new Registry();
  readonly #requests = new Counter({
    name: "appproxy_worker_requests_total",
    help: "Requests answered, by protocol (http, ws upgrades) and status class.",
    labelNames: ["protocol", "code_class"] as const,
    registers: [this.registry],
  });
  readonly #bytes = new Counter({
    name: "appproxy_worker_bytes_total",
    help: "Bytes moved between clients and the worker: in = from clients, out = to clients.",
    labelNames: ["direction"] as const,
    registers: [this.registry],
  });
  readonly #connections = new Gauge({
    name: "appproxy_worker_connections",
    help: "Open client connections by protocol (http, ws, tcp).",
    labelNames: ["protocol"] as const,
    registers: [this.registry],
  });
  readonly upstreamErrors = new Counter({
    name: "appproxy_worker_upstream_errors_total",
    help: "Upstream connections refused, reset or timed out.",
    registers: [this.registry],
  });
  readonly #denied = new Counter({
    name: "appproxy_worker_access_denied_total",
    help: "Requests and connections refused by the access rules, by reason.",
    labelNames: ["reason"] as const,
    registers: [this.registry],
  });
  readonly tableVersion = new Gauge({
    name: "appproxy_worker_table_version",
    help: "The routing version the worker serves.",
    registers: [this.registry],
  });
  readonly coordinatorConnected = new Gauge({
    name: "appproxy_worker_coordinator_connected",
    help: "1 while the worker holds a stream to a coordinator, else 0 (it keeps serving).",
    registers: [this.registry],
  });
  readonly routesServed = new Gauge({
    name: "appproxy_worker_routes",
    help: "Routes the worker serves.",
    registers: [this.registry],
  });
  readonly applySeconds = new Histogram({
    name: "appproxy_worker_apply_seconds",
    help: "Time to build and swap in the lookup index of one applied table change.",
    buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  readonly #bytesIn = this.#bytes.labels("in");
  readonly #bytesOut = this.#bytes.labels("out");
  readonly #requestChildren = new Map<string, Counter.Internal>();

  /** `eventLoopResolutionMs`: as the coordinator's (see src/ops/metrics.ts). */
  constructor(eventLoopResolutionMs = 20) {
    collectDefaultMetrics({
      register: this.registry,
      eventLoopMonitoringPrecision: eventLoopResolutionMs,
    });
    for (const protocol of ["http", "ws", "tcp"] as const)
      this.#connections.labels(protocol).set(0);
  }

  request(protocol: TrafficProtocol, status: number): void {
    const key = `${protocol}${Math.floor(status / 100)}`;
    let child = this.#requestChildren.get(key);
    if (child === undefined) {
      child = this.#requests.labels(protocol, `${Math.floor(status / 100)}xx`);
      this.#requestChildren.set(key, child);
    }
    child.inc();
  }

  bytes(fromClients: number, toClients: number): void {
    if (fromClients > 0) this.#bytesIn.inc(fromClients);
    if (toClients > 0) this.#bytesOut.inc(toClients);
  }

  connectionOpened(protocol: TrafficProtocol): void {
    this.#connections.labels(protocol).inc();
  }

  connectionClosed(protocol: TrafficProtocol): void {
    this.#connections.labels(protocol).dec();
  }

  denied(reason: DenialReason): void {
    this.#denied.labels(reason).inc();
  }
}
