import { trafficPort, type Protocol, type RouteMode, type WorkerRow } from "../workers/model.js";

import type { HealthCheck, Upstream } from "../client/route.js";

// A route's parts are defined once, with the client library that receives them.
export type { HealthCheck, Upstream };

/** A row of `routes`. */
export interface RouteRow {
  id: string;
  session_id: string;
  kernel_id: string | null;
  endpoint_id: string | null;
  app: string;
  protocol: Protocol;
  mode: RouteMode;
  upstreams: Upstream[];
  health_check: HealthCheck | null;
  worker_selector: Record<string, string>;
  worker_id: string;
  port: number | null;
  subdomain: string | null;
  wildcard_domain: string | null;
  open_to_public: boolean;
  allowed_client_ips: string[];
  user_id: string | null;
  project_id: string | null;
  labels: Record<string, string>;
  expires_at: Date | null;
  last_activity_at: Date | null;
  version: number;
  request_hash: string;
  created_at: Date;
  updated_at: Date;
}

/** The worker fields a route's URL is built from. */
export type UrlWorker = Pick<
  WorkerRow,
  "advertised_host" | "frontend_mode" | "tls" | "wildcard_domain" | "wildcard_traffic_port"
>;

/** The route as the API and the stream show it. */
export interface RouteView {
  id: string;
  session_id: string;
  kernel_id: string | null;
  endpoint_id: string | null;
  app: string;
  protocol: Protocol;
  mode: RouteMode;
  upstreams: Upstream[];
  health_check: HealthCheck | null;
  worker_selector: Record<string, string>;
  worker_id: string;
  port: number | null;
  subdomain: string | null;
  url: string;
  open_to_public: boolean;
  allowed_client_ips: string[];
  user_id: string | null;
  project_id: string | null;
  labels: Record<string, string>;
  expires_at: string | null;
  last_activity_at: string | null;
  version: number;
  created_at: string;
  updated_at: string;
}

/** Where users reach a route: the worker's host and port, or its subdomain of the worker's domain. */
export function routeUrl(
  route: Pick<RouteRow, "protocol" | "port" | "subdomain">,
  worker: UrlWorker,
): string {
  const tcp = route.protocol === "tcp";
  if (worker.frontend_mode === "wildcard") {
    const host = `${route.subdomain}.${worker.wildcard_domain}`;
    const port = trafficPort(worker);
    if (tcp) return `tcp://${host}:${port}`;
    const scheme = worker.tls ? "https" : "http";
    const defaultPort = worker.tls ? 443 : 80;
    return port === defaultPort ? `${scheme}://${host}/` : `${scheme}://${host}:${port}/`;
  }
  const host = formatHost(worker.advertised_host);
  if (tcp) return `tcp://${host}:${route.port}`;
  return `${worker.tls ? "https" : "http"}://${host}:${route.port}/`;
}

function formatHost(host: string): string {
  return host.includes(":") && !host.startsWith("[") ? `[${host}]` : host;
}

const iso = (d: Date | string | null): string | null => (d ? new Date(d).toISOString() : null);

export function presentRoute(row: RouteRow, worker: UrlWorker): RouteView {
  return {
    id: row.id,
    session_id: row.session_id,
    kernel_id: row.kernel_id,
    endpoint_id: row.endpoint_id,
    app: row.app,
    protocol: row.protocol,
    mode: row.mode,
    upstreams: row.upstreams,
    health_check: row.health_check,
    worker_selector: row.worker_selector,
    worker_id: row.worker_id,
    port: row.port,
    subdomain: row.subdomain,
    url: routeUrl(row, worker),
    open_to_public: row.open_to_public,
    allowed_client_ips: row.allowed_client_ips,
    user_id: row.user_id,
    project_id: row.project_id,
    labels: row.labels,
    expires_at: iso(row.expires_at),
    last_activity_at: iso(row.last_activity_at),
    version: Number(row.version),
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
  };
}
