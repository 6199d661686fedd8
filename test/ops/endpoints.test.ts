import { once } from "node:events";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { WorkerClient } from "../../src/client/index.js";
import { onPostgres } from "../support/database.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";
import { Api, TOKENS, startHarness, waitFor } from "../support/harness.js";
import { parsePrometheus, samplesOf, valueOf, type Sample } from "./prometheus.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

interface WorkerDetail {
  id: string;
  name: string;
  status: string;
  connected: boolean;
  applied_version: number;
  lag: number;
  route_count: number;
  last_seen_at: string | null;
  instance_id: string | null;
  last_nack: unknown;
}

interface Status {
  coordinator: {
    instance_id: string;
    version: string;
    started_at: string;
    uptime_s: number;
    database: string;
  };
  routing: {
    version: number;
    routes: number;
    changelog_min_version: number;
    stranded_routes: number;
  };
  workers: Record<string, number>;
  workers_detail: WorkerDetail[];
}

const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/i;
const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;
const PACKAGE_VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;
const sorted = (o: object) => Object.keys(o).sort();

let h: Harness;
let client: WorkerClient | undefined;
/** A worker registered over HTTP that never opens its stream: `registered`, with a token. */
let idle: WorkerAnswer;
let streamed: string;
const created: RouteAnswer[] = [];

/** Polls `check` (10 s deadline) until it gives a value, and returns that value. */
async function until<T>(check: () => Promise<T | undefined>, what: string): Promise<T> {
  return (await waitFor(check, 10_000, what)) as T;
}

async function scrape(api: Api = h.anonymous): Promise<Sample[]> {
  const res = await api.get<string>("/metrics");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain/);
  return parsePrometheus(res.body);
}

async function status(api: Api = h.admin): Promise<Status> {
  const res = await api.get<Status>("/status");
  expect(res.status).toBe(200);
  return res.body;
}

beforeAll(async () => {
  h = await startHarness({ REAPER_CRON: "* * * * * *" });
  idle = await registerWorker(h.registration, portWorker({ port_range: [10200, 10209] }));
  client = new WorkerClient({
    coordinatorUrl: h.url,
    registrationToken: TOKENS.registration,
    registration: {
      name: `ops-client-${process.pid}`,
      advertised_host: "127.0.0.1",
      frontend_mode: "port",
      port_range: [10300, 10309],
    },
    reconnectMinMs: 20,
    reconnectMaxMs: 300,
  });
  await client.start();
  streamed = client.workerId!;
  await waitFor(
    async () => {
      const w = await h.admin.get<{ status: string; connected: boolean }>(`/workers/${streamed}`);
      return w.body.status === "alive" && w.body.connected;
    },
    10_000,
    "the client's stream to be up",
  );

  const onIdle = await h.manager.post<RouteAnswer>(
    "/routes",
    routeBody({ worker_id: idle.worker.id }),
  );
  expect(onIdle.status).toBe(201);
  created.push(onIdle.body);
  const onClient = await h.manager.post<RouteAnswer>(
    "/routes?wait=applied&timeout_ms=10000",
    routeBody({ worker_id: streamed }),
  );
  expect(onClient.status).toBe(201);
  expect(onClient.headers.get("x-propagation")).toBe("applied");
  created.push(onClient.body);
  expect(client.table.get(onClient.body.id)?.version).toBe(onClient.body.version);
});

afterAll(async () => {
  await client?.stop();
  await h?.close();
});

describe("health", () => {
  it("answers /healthz and /readyz 200 without a token", async () => {
    const health = await h.anonymous.get("/healthz");
    expect(health.status).toBe(200);
    const ready = await h.anonymous.get("/readyz");
    expect(ready.status).toBe(200);
  });
});

describe("GET /status", () => {
  it("is for admins: 401 without or with an unknown token, 403 for the other roles", async () => {
    const none = await h.anonymous.get("/status");
    expect(none.status).toBe(401);
    expect(none.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect((await h.anonymous.as("not-a-known-token").get("/status")).status).toBe(401);
    for (const token of [TOKENS.manager, TOKENS.registration, idle.token]) {
      const res = await h.anonymous.as(token).get("/status");
      expect(res.status).toBe(403);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    expect((await h.admin.get("/status")).status).toBe(200);
  });

  it("answers exactly the documented fields", async () => {
    const s = await status();
    expect(sorted(s)).toEqual(["coordinator", "routing", "workers", "workers_detail"]);
    expect(sorted(s.coordinator)).toEqual(
      ["database", "instance_id", "started_at", "uptime_s", "version"].sort(),
    );
    // The platform's contract names version, routes, changelog_min_version; stranded_routes is
    // this coordinator's addition (docs/api.md lists all four).
    expect(sorted(s.routing)).toEqual(
      ["changelog_min_version", "routes", "stranded_routes", "version"].sort(),
    );
    // The contract names total, alive, lost, draining, connected, converged. `registered` (the
    // fourth status a worker can have) is added, so that the counts add up to `total`.
    expect(sorted(s.workers)).toEqual(
      ["alive", "connected", "converged", "draining", "lost", "registered", "total"].sort(),
    );
    expect(s.workers_detail).toHaveLength(2);
    for (const w of s.workers_detail) {
      // The contract names the first nine; last_nack (shown in /status, says its stream section)
      // is added. docs/api.md lists them all.
      expect(sorted(w)).toEqual(
        [
          "applied_version",
          "connected",
          "id",
          "instance_id",
          "lag",
          "last_nack",
          "last_seen_at",
          "name",
          "route_count",
          "status",
        ].sort(),
      );
    }
  });

  it("describes this coordinator and the fleet as they are", async () => {
    const latest = Math.max(...created.map((r) => r.version));
    const s = await until(async () => {
      const now = await status();
      return now.workers.converged === 1 ? now : undefined;
    }, "the streamed worker to converge");
    expect(s.coordinator.instance_id).toBe(h.coordinator.instanceId);
    expect(s.coordinator.version).toBe(PACKAGE_VERSION);
    expect(s.coordinator.started_at).toMatch(ISO_TIME);
    expect(Date.parse(s.coordinator.started_at)).toBeLessThanOrEqual(Date.now());
    expect(Number.isInteger(s.coordinator.uptime_s)).toBe(true);
    expect(s.coordinator.uptime_s).toBeGreaterThanOrEqual(0);
    expect(s.coordinator.database).toBe(onPostgres() ? "postgres" : "embedded");

    expect(s.routing.version).toBe(latest);
    expect(s.routing.routes).toBe(2);
    expect(s.routing.stranded_routes).toBe(0);
    expect(s.routing.changelog_min_version).toBeGreaterThanOrEqual(1);
    expect(s.routing.changelog_min_version).toBeLessThanOrEqual(latest);

    expect(s.workers).toEqual({
      total: 2,
      registered: 1,
      alive: 1,
      lost: 0,
      draining: 0,
      connected: 1,
      converged: 1,
    });

    const onStream = s.workers_detail.find((w) => w.id === streamed);
    expect(onStream).toMatchObject({
      status: "alive",
      connected: true,
      applied_version: latest,
      lag: 0,
      route_count: 1,
      instance_id: h.coordinator.instanceId,
      last_nack: null,
    });
    expect(onStream?.last_seen_at).toMatch(ISO_TIME);
    const notStreamed = s.workers_detail.find((w) => w.id === idle.worker.id);
    expect(notStreamed).toMatchObject({
      name: idle.worker.name,
      status: "registered",
      connected: false,
      route_count: 1,
      instance_id: null,
      last_nack: null,
    });
    expect(notStreamed!.lag).toBe(latest - notStreamed!.applied_version);
    expect(notStreamed!.lag).toBeGreaterThan(0);
  });
});

describe("GET /metrics", () => {
  it("serves the fleet's gauges with values that match the fleet", async () => {
    const latest = Math.max(...created.map((r) => r.version));
    const m = await scrape();
    expect(valueOf(m, "appproxy_routing_version")).toBe(latest);
    expect(valueOf(m, "appproxy_routes")).toBe(created.length);
    expect(valueOf(m, "appproxy_workers_connected")).toBe(1);
    expect(valueOf(m, "appproxy_workers", { status: "registered" })).toBe(1);
    expect(valueOf(m, "appproxy_workers", { status: "alive" })).toBe(1);
    expect(valueOf(m, "appproxy_workers", { status: "lost" })).toBe(0);
    expect(valueOf(m, "appproxy_workers", { status: "draining" })).toBe(0);
    expect(valueOf(m, "appproxy_stranded_routes")).toBe(0);
    expect(valueOf(m, "appproxy_failovers_total")).toBe(0);

    // A histogram over the two workers that are not lost.
    expect(samplesOf(m, "appproxy_worker_lag_versions_bucket").length).toBeGreaterThan(0);
    expect(valueOf(m, "appproxy_worker_lag_versions_count")).toBe(2);
    expect(valueOf(m, "appproxy_worker_lag_versions_bucket", { le: "+Inf" })).toBe(2);
    expect(valueOf(m, "appproxy_worker_lag_versions_bucket", { le: "0" })).toBe(1);
  });

  it("times the write transactions and counts the requests each answered", async () => {
    const m = await scrape();
    // Every route of this file was created through this instance, in at least one transaction.
    const transactions = valueOf(m, "appproxy_write_transaction_seconds_count");
    expect(transactions).toBeGreaterThanOrEqual(1);
    expect(valueOf(m, "appproxy_write_transaction_requests_count")).toBe(transactions);
    expect(valueOf(m, "appproxy_write_transaction_requests_sum")).toBeGreaterThanOrEqual(
      created.length,
    );
    expect(valueOf(m, "appproxy_write_transaction_seconds_sum")).toBeGreaterThan(0);
    expect(valueOf(m, "appproxy_write_transaction_requests_bucket", { le: "+Inf" })).toBe(
      transactions,
    );
  });

  it("times each stage of a change, from its request to the worker's ack", async () => {
    const m = await scrape();
    const count = (stage: string) => valueOf(m, "appproxy_change_stage_seconds_count", { stage });
    // Every route of this file went through the committer of this instance.
    for (const stage of ["queue", "lock", "commit"]) {
      expect(count(stage)).toBeGreaterThanOrEqual(created.length);
    }
    expect(count("parse")).toBeGreaterThanOrEqual(created.length);
    // The worker's stream took at least one change committed here, and acknowledged it.
    expect(count("frame")).toBeGreaterThanOrEqual(1);
    expect(count("ack")).toBeGreaterThanOrEqual(1);
    for (const stage of ["parse", "queue", "lock", "commit", "answer", "frame", "ack"]) {
      expect(valueOf(m, "appproxy_change_stage_seconds_bucket", { stage, le: "+Inf" })).toBe(
        count(stage),
      );
    }
  });

  it("counts the propagation to the worker and the stream's frames", async () => {
    const m = await scrape();
    expect(samplesOf(m, "appproxy_propagation_seconds_bucket").length).toBeGreaterThan(0);
    expect(valueOf(m, "appproxy_propagation_seconds_count")).toBeGreaterThanOrEqual(1);
    expect(valueOf(m, "appproxy_propagation_seconds_sum")).toBeGreaterThanOrEqual(0);

    const frames = samplesOf(m, "appproxy_stream_frames_total");
    for (const f of frames) expect(sorted(f.labels)).toEqual(["direction", "type"]);
    expect(valueOf(m, "appproxy_stream_frames_total", { direction: "out", type: "hello" })).toBe(1);
    expect(
      valueOf(m, "appproxy_stream_frames_total", { direction: "in", type: "ack" }),
    ).toBeGreaterThanOrEqual(1);
  });

  it("times HTTP requests by method, path template and status, never by id", async () => {
    const id = created[0]!.id;
    expect((await h.admin.get(`/routes/${id}`)).status).toBe(200);
    expect((await h.admin.get("/routes/00000000-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await h.admin.get(`/workers/${streamed}`)).status).toBe(200);
    expect((await h.anonymous.get(`/no/such/${id}`)).status).toBe(404);

    const m = await scrape();
    const timed = samplesOf(m, "appproxy_http_request_duration_seconds_count");
    expect(timed.length).toBeGreaterThan(0);
    for (const s of timed) {
      expect(sorted(s.labels)).toEqual(["method", "route", "status"]);
      expect(s.labels.route, JSON.stringify(s.labels)).not.toMatch(UUID);
    }
    for (const s of samplesOf(m, "appproxy_http_request_duration_seconds_bucket")) {
      expect(s.labels.route).not.toMatch(UUID);
    }
    const count = (method: string, route: string, code: string) =>
      valueOf(m, "appproxy_http_request_duration_seconds_count", { method, route, status: code });
    expect(count("GET", "/routes/:id", "200")).toBeGreaterThanOrEqual(1);
    expect(count("GET", "/routes/:id", "404")).toBeGreaterThanOrEqual(1);
    expect(count("GET", "/workers/:id", "200")).toBeGreaterThanOrEqual(1);
    expect(count("POST", "/routes", "201")).toBe(2);
    expect(count("POST", "/workers/register", "201")).toBe(2);
    expect(count("GET", "/status", "200")).toBeGreaterThanOrEqual(1);
    expect(count("GET", "/status", "401")).toBeGreaterThanOrEqual(1);
  });

  it("counts reaper runs by outcome", async () => {
    const runs = await until(async () => {
      const found = samplesOf(await scrape(), "appproxy_reaper_runs_total");
      return found.some((s) => s.value >= 1) ? found : undefined;
    }, "a reaper run to be counted");
    for (const s of runs) expect(["acted", "skipped", "failed"]).toContain(s.labels.outcome);
    expect(runs.find((s) => s.labels.outcome === "failed")?.value ?? 0).toBe(0);
  });

  it("includes the process's default metrics", async () => {
    const m = await scrape();
    expect(samplesOf(m, "process_cpu_user_seconds_total")).toHaveLength(1);
    expect(valueOf(m, "nodejs_heap_size_total_bytes")).toBeGreaterThan(0);
  });

  it("counts a stream's disconnect by close code once the worker stops", async () => {
    const before = samplesOf(await scrape(), "appproxy_stream_disconnects_total").reduce(
      (sum, s) => sum + s.value,
      0,
    );
    await client!.stop();
    const m = await until(async () => {
      const now = await scrape();
      const total = samplesOf(now, "appproxy_stream_disconnects_total").reduce(
        (sum, s) => sum + s.value,
        0,
      );
      return total > before ? now : undefined;
    }, "the disconnect to be counted");
    for (const s of samplesOf(m, "appproxy_stream_disconnects_total")) {
      expect(s.labels.code).toMatch(/^\d{4}$/);
    }
    // The client closes with 1000 (normal closure).
    expect(valueOf(m, "appproxy_stream_disconnects_total", { code: "1000" })).toBe(1);
    await waitFor(
      async () => valueOf(await scrape(), "appproxy_workers_connected") === 0,
      10_000,
      "the worker to show as disconnected",
    );
  });

  it("counts close codes the stream does not define as other: a worker makes no series", async () => {
    const disconnects = (m: Sample[], code: string) =>
      samplesOf(m, "appproxy_stream_disconnects_total", { code }).reduce((n, s) => n + s.value, 0);
    const before = disconnects(await scrape(), "other");
    for (const code of [3456, 4999]) {
      const ws = new WebSocket(idle.stream_url, {
        headers: { authorization: `Bearer ${idle.token}` },
      });
      await once(ws, "message"); // hello
      ws.close(code, "a code of the worker's own");
      await once(ws, "close");
    }
    const m = await until(async () => {
      const now = await scrape();
      return disconnects(now, "other") >= before + 2 ? now : undefined;
    }, "both disconnects to be counted");
    const codes = samplesOf(m, "appproxy_stream_disconnects_total").map((s) => s.labels.code);
    expect(codes).not.toContain("3456");
    expect(codes).not.toContain("4999");
  });
});

describe("what the operations endpoints never show", () => {
  it("leaks no token, worker token or token secret in /status, /metrics or /openapi.json", async () => {
    const secrets = [TOKENS.manager, TOKENS.registration, TOKENS.admin, TOKENS.secret, idle.token];
    for (const [path, api] of [
      ["/status", h.admin],
      ["/metrics", h.anonymous],
      ["/openapi.json", h.anonymous],
    ] as const) {
      const res = await fetch(h.url + path, {
        headers: api.token ? { authorization: `Bearer ${api.token}` } : {},
      });
      expect(res.status, path).toBe(200);
      const raw = `${[...res.headers].map(([k, v]) => `${k}: ${v}`).join("\n")}\n${await res.text()}`;
      for (const secret of secrets)
        expect(raw.includes(secret), `${path} shows a secret`).toBe(false);
    }
  });
});

describe("PUBLIC_STATUS=true", () => {
  let pub: Harness;
  let worker: WorkerAnswer;

  beforeAll(async () => {
    pub = await startHarness({ PUBLIC_STATUS: "true" });
    worker = await registerWorker(pub.registration);
  });
  afterAll(() => pub?.close());

  it("serves /status without a token, and still shows no secret", async () => {
    const res = await fetch(`${pub.url}/status`);
    expect(res.status).toBe(200);
    const raw = await res.text();
    const body = JSON.parse(raw) as Status;
    expect(body.coordinator.instance_id).toBe(pub.coordinator.instanceId);
    expect(body.coordinator.database).toBe(onPostgres() ? "postgres" : "embedded");
    expect(body.workers.total).toBe(1);
    expect(body.workers_detail.map((w) => w.id)).toEqual([worker.worker.id]);
    for (const secret of [
      TOKENS.manager,
      TOKENS.registration,
      TOKENS.admin,
      TOKENS.secret,
      worker.token,
    ]) {
      expect(raw.includes(secret)).toBe(false);
    }
    expect((await pub.admin.get("/status")).status).toBe(200);
  });
});
