import type { Api } from "./harness.js";

let counter = 0;
const unique = (prefix: string) => `${prefix}-${process.pid}-${++counter}`;

export interface WorkerAnswer {
  worker: { id: string; name: string; status: string; route_count: number } & Record<
    string,
    unknown
  >;
  token: string;
  stream_url: string;
  version: number;
  routes: Array<{ id: string; version: number }>;
}

export function portWorker(overrides: Record<string, unknown> = {}) {
  return {
    name: unique("w"),
    advertised_host: "127.0.0.1",
    frontend_mode: "port",
    port_range: [10200, 10299],
    protocols: ["http", "tcp"],
    ...overrides,
  };
}

export function wildcardWorker(overrides: Record<string, unknown> = {}) {
  return {
    name: unique("wc"),
    advertised_host: "10.1.0.1",
    frontend_mode: "wildcard",
    wildcard_domain: `${unique("apps")}.example.com`,
    protocols: ["http", "tcp"],
    ...overrides,
  };
}

/** Registers a worker; a known name needs `workerToken`, its worker's token. */
export async function registerWorker(
  registration: Api,
  body: Record<string, unknown> = portWorker(),
  workerToken?: string,
): Promise<WorkerAnswer> {
  const headers: Record<string, string> = workerToken ? { "x-worker-token": workerToken } : {};
  const res = await registration.post<WorkerAnswer>("/workers/register", body, headers);
  if (res.status !== 201 && res.status !== 200) {
    throw new Error(`register failed: ${res.status} ${JSON.stringify(res.body)}`);
  }
  return res.body;
}

export function routeBody(overrides: Record<string, unknown> = {}) {
  return {
    session_id: unique("sess"),
    app: "jupyter",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
    ...overrides,
  };
}

export interface RouteAnswer {
  id: string;
  worker_id: string;
  port: number | null;
  subdomain: string | null;
  url: string;
  version: number;
  session_id: string;
  [key: string]: unknown;
}
