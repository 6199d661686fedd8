import { randomBytes } from "node:crypto";
import net from "node:net";
import { expect } from "vitest";
import {
  WorkerClient,
  type WorkerClientOptions,
  type WorkerRegistration,
} from "../../src/client/index.js";
import { TOKENS, waitFor, type Api } from "../support/harness.js";
import type { RouteAnswer } from "../support/factories.js";

/** A worker as GET /workers/{id} shows it (the fields these tests read). */
export interface WorkerView {
  id: string;
  name: string;
  status: "registered" | "alive" | "lost" | "draining";
  connected: boolean;
  route_count: number;
  applied_version: number;
  last_seen_at: string | null;
  registered_at: string;
}

export interface StatusView {
  coordinator: { instance_id: string; started_at: string };
  routing: {
    version: number;
    routes: number;
    changelog_min_version: number;
    stranded_routes: number;
  };
  workers: Record<string, number>;
  workers_detail: Array<{ id: string; connected: boolean; lag: number }>;
}

/** A port-mode registration with a name of its own; the tests give each group its own label. */
export function portRegistration(
  prefix: string,
  overrides: Partial<WorkerRegistration> = {},
): WorkerRegistration {
  return {
    name: `${prefix}-${randomBytes(4).toString("hex")}`,
    advertised_host: "127.0.0.1",
    frontend_mode: "port",
    port_range: [20000, 20099],
    protocols: ["http", "tcp"],
    ...overrides,
  };
}

/** Starts and stops WorkerClients; `stopAll` is safe to call from afterAll whatever happened. */
export class ClientPool {
  private readonly clients = new Set<WorkerClient>();

  constructor(private readonly coordinatorUrl: () => string) {}

  /** A started client whose registration was accepted (its stream comes up in the background). */
  async start(
    registration: WorkerRegistration,
    options: Partial<WorkerClientOptions> = {},
  ): Promise<WorkerClient> {
    const client = new WorkerClient({
      coordinatorUrl: this.coordinatorUrl(),
      registrationToken: TOKENS.registration,
      registration,
      reconnectMinMs: 20,
      reconnectMaxMs: 300,
      activityIntervalMs: 100,
      ...options,
    });
    this.clients.add(client);
    await client.start();
    return client;
  }

  /** A started client whose stream is up and alive as the API shows it. */
  async connect(
    api: Api,
    registration: WorkerRegistration,
    options: Partial<WorkerClientOptions> = {},
  ): Promise<WorkerClient> {
    const client = await this.start(registration, options);
    await waitForWorker(api, client.workerId!, (w) => w.status === "alive" && w.connected, "alive");
    return client;
  }

  async stop(client: WorkerClient): Promise<void> {
    await client.stop();
    this.clients.delete(client);
  }

  async stopAll(): Promise<void> {
    await Promise.all([...this.clients].map((c) => c.stop()));
    this.clients.clear();
  }
}

export async function getWorker(api: Api, id: string): Promise<WorkerView> {
  const res = await api.get<WorkerView>(`/workers/${id}`);
  expect(res.status, `GET /workers/${id}`).toBe(200);
  return res.body;
}

/** waitFor for a value: polls until `check` gives one (not undefined) and returns it. */
export async function pollFor<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs: number,
  what: string,
): Promise<T> {
  let found: T | undefined;
  await waitFor(
    async () => {
      found = await check();
      return found !== undefined;
    },
    timeoutMs,
    what,
  );
  return found as T;
}

/** Polls GET /workers/{id} until `check` holds; returns that view of the worker. */
export function waitForWorker(
  api: Api,
  id: string,
  check: (w: WorkerView) => boolean,
  what: string,
  timeoutMs = 10_000,
): Promise<WorkerView> {
  return pollFor(
    async () => {
      const w = await getWorker(api, id);
      return check(w) ? w : undefined;
    },
    timeoutMs,
    `worker ${id} to be ${what}`,
  );
}

export async function getRoute(api: Api, id: string): Promise<RouteAnswer> {
  const res = await api.get<RouteAnswer>(`/routes/${id}`);
  expect(res.status, `GET /routes/${id}`).toBe(200);
  return res.body;
}

export async function createRoute(
  manager: Api,
  body: Record<string, unknown>,
): Promise<{ route: RouteAnswer; version: number }> {
  const res = await manager.post<RouteAnswer>("/routes", body);
  expect(res.status, `POST /routes: ${JSON.stringify(res.body)}`).toBe(201);
  return { route: res.body, version: Number(res.headers.get("x-routing-version")) };
}

export function routeInput(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    session_id: `sess-${randomBytes(4).toString("hex")}`,
    app: "jupyter",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
    ...overrides,
  };
}

export async function getStatus(admin: Api): Promise<StatusView> {
  const res = await admin.get<StatusView>("/status");
  expect(res.status).toBe(200);
  return res.body;
}

/**
 * The value of one sample of /metrics, e.g. `appproxy_reaper_runs_total{outcome="acted"}`;
 * 0 when the sample is absent (a counter never incremented has no labelled sample yet).
 */
export async function metric(api: Api, sample: string): Promise<number> {
  const res = await api.get<string>("/metrics");
  expect(res.status).toBe(200);
  const text = typeof res.body === "string" ? res.body : String(res.body);
  return metricIn(text, sample);
}

export function metricIn(text: string, sample: string): number {
  for (const line of text.split("\n")) {
    if (line.startsWith(sample + " ")) return Number(line.slice(sample.length + 1));
  }
  return 0;
}

/** The sum of every sample of `name` whose labels include all of `labels`. */
export function metricSum(text: string, name: string, labels: Record<string, string>): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    const match = /^([a-z_]+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const present = match[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => present.includes(`${k}="${v}"`))) {
      sum += Number(match[3]);
    }
  }
  return sum;
}

export const reaperRuns = (api: Api, outcome: "acted" | "skipped" | "failed") =>
  metric(api, `appproxy_reaper_runs_total{outcome="${outcome}"}`);

/**
 * A TCP relay in front of the coordinator (or a database) that can go silent: while `blackhole()`
 * holds, bytes in both directions are dropped (connections stay open, new ones are accepted and go
 * nowhere), which is what a network partition looks like to both sides. `heal()` cuts what was
 * opened meanwhile. With `delayMs`, every chunk is passed on that long after it came, in order:
 * a peer that far away.
 */
export class TcpProxy {
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private silent = false;

  private constructor(
    private readonly server: net.Server,
    readonly url: string,
    private readonly delayMs: number,
  ) {}

  /** A relay to `target` (any URL with a host and port); `url` is `target` pointing at it. */
  static async start(target: string, options: { delayMs?: number } = {}): Promise<TcpProxy> {
    const { hostname, port } = new URL(target);
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address() as net.AddressInfo;
    const url = new URL(target);
    url.host = `127.0.0.1:${address.port}`;
    const proxy = new TcpProxy(server, url.toString().replace(/\/$/, ""), options.delayMs ?? 0);
    server.on("connection", (client) => proxy.relay(client, hostname, Number(port)));
    return proxy;
  }

  private relay(client: net.Socket, host: string, port: number): void {
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    this.pairs.add(pair);
    const end = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    const pass = (to: net.Socket) => (chunk: Buffer) => {
      if (this.silent) return;
      // Timers of one duration fire in the order they were set: the stream stays in order.
      if (this.delayMs > 0) setTimeout(() => to.write(chunk), this.delayMs);
      else to.write(chunk);
    };
    client.on("data", pass(upstream));
    upstream.on("data", pass(client));
    for (const socket of [client, upstream]) {
      // Each chunk leaves when it is due, not held back to be coalesced with the next.
      socket.setNoDelay(true);
      socket.on("error", end);
      socket.on("close", end);
    }
  }

  blackhole(): void {
    this.silent = true;
  }

  heal(): void {
    this.silent = false;
    for (const { client, upstream } of this.pairs) {
      client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  async close(): Promise<void> {
    this.heal();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
