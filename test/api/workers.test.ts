import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { TOKENS, startHarness, waitFor, type ApiAnswer } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  wildcardWorker,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

interface WorkerView {
  id: string;
  name: string;
  status: string;
  route_count: number;
  [key: string]: unknown;
}

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  routes?: string[];
}

const WORKER_FIELDS = [
  "id",
  "name",
  "advertised_host",
  "frontend_mode",
  "port_range",
  "wildcard_domain",
  "wildcard_traffic_port",
  "protocols",
  "modes",
  "tls",
  "capacity",
  "labels",
  "dedicated",
  "status",
  "connected",
  "route_count",
  "applied_version",
  "last_nack",
  "last_seen_at",
  "registered_at",
].sort();

const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

let h: Harness;
let probe: Record<string, unknown>;
let probeToken: string;

beforeAll(async () => {
  // Nothing here holds a stream; no worker may turn lost while the file runs.
  h = await startHarness({ HEARTBEAT_INTERVAL_S: "7", WORKER_LOST_AFTER_S: "3600" });
  probe = portWorker({ name: `probe-${short()}` });
  probeToken = (await registerWorker(h.registration, probe)).token;
});
afterAll(() => h?.close());

function short(): string {
  return randomUUID().slice(0, 8);
}

/** A label value no other test uses, so that selectors confine placement to one test's workers. */
const pool = (what: string) => ({ pool: `${what}-${short()}` });

/** The global routing version, as a registering worker is told it. */
async function headVersion(): Promise<number> {
  const res = await h.registration.post<WorkerAnswer>("/workers/register", probe, {
    "x-worker-token": probeToken,
  });
  expect(res.status).toBe(200);
  return res.body.version;
}

async function createRoute(body: Record<string, unknown>): Promise<RouteAnswer> {
  const res = await h.manager.post<RouteAnswer>("/routes", routeBody(body));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

async function getRoute(id: string): Promise<ApiAnswer<RouteAnswer>> {
  return h.admin.get<RouteAnswer>(`/routes/${id}`);
}

async function getWorker(id: string): Promise<WorkerView> {
  const res = await h.manager.get<WorkerView>(`/workers/${id}`);
  expect(res.status).toBe(200);
  return res.body;
}

async function routesOn(workerId: string): Promise<RouteAnswer[]> {
  const res = await h.admin.get<{ items: RouteAnswer[] }>(
    `/routes?worker_id=${workerId}&limit=1000`,
  );
  expect(res.status).toBe(200);
  return res.body.items;
}

function expectProblem(res: ApiAnswer<unknown>, status: number): Problem {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  const problem = res.body as Problem;
  expect(problem).toMatchObject({
    type: expect.any(String),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  });
  return problem;
}

interface Frame {
  type: string;
  [field: string]: unknown;
}

/**
 * Opens a worker's stream with `token`: the HTTP status that refused the upgrade, or the first
 * two frames (hello, then the table) and the open socket.
 */
function openStream(
  url: string,
  token: string,
): Promise<{ status: number; frames: Frame[]; socket?: WebSocket }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    const frames: Frame[] = [];
    let settled = false;
    ws.on("unexpected-response", (_request, response) => {
      settled = true;
      resolve({ status: response.statusCode ?? 0, frames });
      response.resume();
      ws.terminate();
    });
    ws.on("message", (data: Buffer) => {
      frames.push(JSON.parse(data.toString("utf8")) as Frame);
      if (frames.length === 2 && !settled) {
        settled = true;
        resolve({ status: 101, frames, socket: ws });
      }
    });
    ws.on("error", (error) => {
      if (!settled) reject(error);
    });
  });
}

async function closeStream(socket: WebSocket | undefined): Promise<void> {
  if (!socket || socket.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((resolve) => socket.once("close", resolve));
  socket.close(1000);
  await closed;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

describe("POST /workers/register", () => {
  it("registers a new worker: 201 with worker, token, stream_url, heartbeat, version and its table", async () => {
    const head = await headVersion();
    const body = portWorker({
      advertised_host: "w1.example.com",
      port_range: [10200, 10209],
      labels: { zone: "a" },
      capacity: 5,
    });
    const res = await h.registration.post<WorkerAnswer & Record<string, unknown>>(
      "/workers/register",
      body,
    );
    expect(res.status).toBe(201);
    expect(Object.keys(res.body).sort()).toEqual(
      [
        "access_keys",
        "heartbeat_interval_s",
        "routes",
        "stream_url",
        "token",
        "version",
        "worker",
      ].sort(),
    );
    expect(res.body.access_keys).toEqual((await h.anonymous.get("/.well-known/jwks.json")).body);
    const { worker } = res.body;
    expect(Object.keys(worker).sort()).toEqual(WORKER_FIELDS);
    expect(worker).toEqual({
      id: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
      name: body.name,
      advertised_host: "w1.example.com",
      frontend_mode: "port",
      port_range: [10200, 10209],
      wildcard_domain: null,
      wildcard_traffic_port: null,
      protocols: ["http", "tcp"],
      modes: ["interactive", "inference"],
      tls: false,
      capacity: 5,
      labels: { zone: "a" },
      dedicated: false,
      status: "registered",
      connected: false,
      route_count: 0,
      applied_version: 0,
      last_nack: null,
      last_seen_at: null,
      registered_at: expect.any(String),
    });
    const registeredAt = Date.parse(worker.registered_at as string);
    expect(Math.abs(registeredAt - Date.now())).toBeLessThan(60_000);
    expect(res.body.token).toMatch(new RegExp(`^wt1\\.${worker.id}\\.[A-Za-z0-9_-]+$`));
    expect(res.body.stream_url).toBe(`${h.url.replace(/^http/, "ws")}/workers/${worker.id}/stream`);
    expect(res.body.heartbeat_interval_s).toBe(7);
    expect(res.body.version).toBe(head);
    expect(res.headers.get("x-routing-version")).toBe(String(head));
    expect(res.body.routes).toEqual([]);

    expect(await getWorker(worker.id)).toEqual(worker);
    expect((await h.admin.get(`/workers/${worker.id}`)).body).toEqual(worker);
  });

  it("fills in the documented defaults", async () => {
    const res = await h.registration.post<WorkerAnswer>("/workers/register", {
      name: `defaults-${short()}`,
      advertised_host: "10.0.0.9",
      frontend_mode: "port",
      port_range: [20000, 20000],
    });
    expect(res.status).toBe(201);
    expect(res.body.worker).toMatchObject({
      protocols: ["http"],
      modes: ["interactive", "inference"],
      tls: false,
      capacity: null,
      labels: {},
      dedicated: false,
      wildcard_domain: null,
      wildcard_traffic_port: null,
    });
  });

  it("serves wildcard workers on 443 with tls, 80 without, or the port asked", async () => {
    const tls = await registerWorker(h.registration, wildcardWorker({ tls: true }));
    expect(tls.worker).toMatchObject({
      frontend_mode: "wildcard",
      port_range: null,
      wildcard_traffic_port: 443,
    });
    const plain = await registerWorker(h.registration, wildcardWorker());
    expect(plain.worker.wildcard_traffic_port).toBe(80);
    const asked = await registerWorker(
      h.registration,
      wildcardWorker({ tls: true, wildcard_traffic_port: 8443 }),
    );
    expect(asked.worker.wildcard_traffic_port).toBe(8443);
  });

  it("answers the same name again with 200, the same id and a token that still works", async () => {
    const body = portWorker({ port_range: [10200, 10209] });
    const first = await h.registration.post<WorkerAnswer>("/workers/register", body);
    expect(first.status).toBe(201);
    const again = await h.registration.post<WorkerAnswer>("/workers/register", body, {
      "x-worker-token": first.body.token,
    });
    expect(again.status).toBe(200);
    expect(again.body.worker.id).toBe(first.body.worker.id);
    expect(again.body.worker.registered_at).toBe(first.body.worker.registered_at);
    expect(again.body.token).toBe(first.body.token);
    expect(again.body.stream_url).toBe(first.body.stream_url);

    // The coordinator knows the token: a worker token is refused elsewhere with 403, not 401.
    const asWorker = h.anonymous.as(again.body.token);
    expectProblem(await asWorker.get(`/workers/${again.body.worker.id}`), 403);
    expectProblem(await asWorker.get("/routes"), 403);
    const forged = h.anonymous.as(`wt1.${again.body.worker.id}.not-the-signature`);
    expectProblem(await forged.get("/routes"), 401);

    const list = await h.admin.get<{ items: WorkerView[] }>("/workers");
    expect(list.body.items.filter((w) => w.name === body.name)).toHaveLength(1);

    // It opens the worker's own stream, which then shows as alive and connected.
    const stream = await openStream(again.body.stream_url, again.body.token);
    try {
      expect(stream.status).toBe(101);
      expect(stream.frames[0]).toMatchObject({ type: "hello", heartbeat_interval_s: 7 });
      expect(stream.frames[1]).toMatchObject({ type: "snapshot", routes: [] });
      const id = again.body.worker.id;
      await waitFor(async () => (await getWorker(id)).connected === true, 10_000, "connected");
      expect(await getWorker(id)).toMatchObject({ status: "alive", connected: true });
      const alive = await h.admin.get<{ items: WorkerView[] }>("/workers?status=alive");
      expect(alive.body.items.map((w) => w.id)).toContain(id);
    } finally {
      await closeStream(stream.socket);
    }
    await waitFor(
      async () => (await getWorker(again.body.worker.id)).connected === false,
      10_000,
      "disconnected",
    );
    // Less than WORKER_LOST_AFTER_S after its stream ended, it is still alive, not connected.
    expect((await getWorker(again.body.worker.id)).status).toBe("alive");
    // The token is this worker's only: another worker's stream refuses it.
    const other = await registerWorker(h.registration, portWorker());
    const refused = await openStream(other.stream_url, again.body.token);
    expect(refused.status).toBe(403);
  });

  it("refuses a known name without that worker's token in X-Worker-Token (409) and changes nothing", async () => {
    const labels = pool("takeover");
    const body = portWorker({ advertised_host: "w.example.com", labels });
    const w = await registerWorker(h.registration, body);
    const route = await createRoute({ worker_id: w.worker.id, worker_selector: labels });
    const other = await registerWorker(h.registration, portWorker());
    const before = await getWorker(w.worker.id);
    const head = await headVersion();
    const hijack = { ...body, advertised_host: "attacker.example.com" };

    const attempts: Array<Record<string, string>> = [
      {},
      { "x-worker-token": other.token },
      { "x-worker-token": `wt1.${w.worker.id}.not-the-signature` },
      { "x-worker-token": TOKENS.registration },
      { "x-worker-token": `${w.token}, ${w.token}` },
    ];
    for (const headers of attempts) {
      const res = await h.registration.post<Problem>("/workers/register", hijack, headers);
      const problem = expectProblem(res, 409);
      expect(problem.detail).toContain("X-Worker-Token");
      expect(JSON.stringify(res.body)).not.toContain(w.token);
    }
    expect(await getWorker(w.worker.id)).toEqual(before);
    expect((await getRoute(route.id)).body).toEqual(route);
    expect(await headVersion()).toBe(head);

    // The worker itself, with its token, may move its host: the answer keeps its identity.
    const own = await h.registration.post<WorkerAnswer>("/workers/register", hijack, {
      "x-worker-token": w.token,
    });
    expect(own.status).toBe(200);
    expect(own.body.worker.id).toBe(w.worker.id);
    expect(own.body.token).toBe(w.token);
    expect(own.body.worker.advertised_host).toBe("attacker.example.com");
  });

  it("registers a removed worker's name anew (201, a new id) whatever token it sends", async () => {
    const body = portWorker();
    const w = await registerWorker(h.registration, body);
    expect((await h.manager.delete(`/workers/${w.worker.id}`)).status).toBe(204);
    const anew = await h.registration.post<WorkerAnswer>("/workers/register", body, {
      "x-worker-token": w.token,
    });
    expect(anew.status).toBe(201);
    expect(anew.body.worker.id).not.toBe(w.worker.id);
    expect(anew.body.token).not.toBe(w.token);
  });

  it("refuses to change port_range or frontend_mode while the worker holds routes (409), and allows it once they are gone", async () => {
    const labels = pool("move");
    const body = portWorker({ port_range: [10200, 10209], labels });
    const w = await registerWorker(h.registration, body);
    const route = await createRoute({ worker_id: w.worker.id, worker_selector: labels });
    const head = await headVersion();

    const proof = { "x-worker-token": w.token };
    const range = await h.registration.post(
      "/workers/register",
      { ...body, port_range: [10300, 10309] },
      proof,
    );
    expect(expectProblem(range, 409).detail).toContain(body.name as string);
    const mode = await h.registration.post(
      "/workers/register",
      {
        ...body,
        port_range: undefined,
        frontend_mode: "wildcard",
        wildcard_domain: `apps-${short()}.example.com`,
      },
      proof,
    );
    expectProblem(mode, 409);
    const unchanged = await getWorker(w.worker.id);
    expect(unchanged).toMatchObject({ port_range: [10200, 10209], frontend_mode: "port" });
    expect((await getRoute(route.id)).body).toEqual(route);
    expect(await headVersion()).toBe(head);

    expect((await h.manager.delete(`/routes/${route.id}`)).status).toBe(204);
    const moved = await h.registration.post<WorkerAnswer>(
      "/workers/register",
      { ...body, port_range: [10300, 10309] },
      proof,
    );
    expect(moved.status).toBe(200);
    expect(moved.body.worker.port_range).toEqual([10300, 10309]);
    const next = await createRoute({ worker_id: w.worker.id, worker_selector: labels });
    expect(next.port).toBe(10300);
  });

  it("refuses to change wildcard_domain while the worker holds routes (409)", async () => {
    const labels = pool("domain");
    const body = wildcardWorker({ labels });
    const w = await registerWorker(h.registration, body);
    const route = await createRoute({ worker_id: w.worker.id, worker_selector: labels });
    const res = await h.registration.post(
      "/workers/register",
      { ...body, wildcard_domain: `other-${short()}.example.com` },
      { "x-worker-token": w.token },
    );
    expectProblem(res, 409);
    expect((await getWorker(w.worker.id)).wildcard_domain).toBe(body.wildcard_domain);
    expect((await getRoute(route.id)).body.url).toBe(route.url);
  });

  it("lets advertised_host and tls change while it holds routes: their url follows, without a new version", async () => {
    const labels = pool("host");
    const body = portWorker({ advertised_host: "old.example.com", labels });
    const w = await registerWorker(h.registration, body);
    const route = await createRoute({ worker_id: w.worker.id, worker_selector: labels });
    const tcp = await createRoute({
      worker_id: w.worker.id,
      worker_selector: labels,
      protocol: "tcp",
    });
    expect(route.url).toBe(`http://old.example.com:${route.port}/`);
    const head = await headVersion();

    const res = await h.registration.post<WorkerAnswer>(
      "/workers/register",
      { ...body, advertised_host: "new.example.com", tls: true },
      { "x-worker-token": w.token },
    );
    expect(res.status).toBe(200);
    expect(res.body.worker).toMatchObject({
      id: w.worker.id,
      advertised_host: "new.example.com",
      tls: true,
    });
    expect(res.body.version).toBe(head);
    const table = new Map(res.body.routes.map((r) => [r.id, r as unknown as RouteAnswer]));
    expect(table.get(route.id)).toMatchObject({
      url: `https://new.example.com:${route.port}/`,
      version: route.version,
    });
    expect(table.get(tcp.id)).toMatchObject({
      url: `tcp://new.example.com:${tcp.port}`,
      version: tcp.version,
    });

    const read = await getRoute(route.id);
    expect(read.body).toEqual({ ...route, url: `https://new.example.com:${route.port}/` });
    expect(read.headers.get("etag")).toBe(`"${route.version}"`);
    expect(await headVersion()).toBe(head);
  });

  it("answers with the worker's table at the version it names", async () => {
    const labels = pool("table");
    const body = portWorker({ labels });
    const w = await registerWorker(h.registration, body);
    const other = await registerWorker(h.registration, portWorker({ labels }));
    const batch = await h.manager.post<{ version: number; items: RouteAnswer[] }>("/routes/batch", {
      routes: [
        routeBody({ worker_id: w.worker.id, worker_selector: labels }),
        routeBody({ worker_id: w.worker.id, worker_selector: labels, protocol: "tcp" }),
        routeBody({ worker_id: other.worker.id, worker_selector: labels }),
      ],
    });
    expect(batch.status).toBe(201);
    await h.manager.patch(`/routes/${batch.body.items[0]!.id}`, { labels: { patched: "yes" } });

    const res = await h.registration.post<WorkerAnswer & { routes: RouteAnswer[] }>(
      "/workers/register",
      body,
      { "x-worker-token": w.token },
    );
    expect(res.status).toBe(200);
    expect(res.body.version).toBe(await headVersion());
    const expected = (await routesOn(w.worker.id)).sort(byId);
    expect(expected).toHaveLength(2);
    expect([...res.body.routes].sort(byId)).toEqual(expected);
    for (const r of res.body.routes) expect(r.version).toBeLessThanOrEqual(res.body.version);
    expect(res.body.worker.route_count).toBe(2);
  });

  it("keeps a draining worker draining when it registers again", async () => {
    const body = portWorker();
    const w = await registerWorker(h.registration, body);
    expect((await h.admin.post(`/workers/${w.worker.id}/drain`)).status).toBe(200);
    const again = await h.registration.post<WorkerAnswer>("/workers/register", body, {
      "x-worker-token": w.token,
    });
    expect(again.status).toBe(200);
    expect(again.body.worker.status).toBe("draining");
  });

  it("answers 400, 401 and 403 as documented", async () => {
    const bad = await h.registration.post(
      "/workers/register",
      portWorker({ name: "a".repeat(64) }),
    );
    expect(expectProblem(bad, 400)).toMatchObject({
      errors: expect.arrayContaining([expect.objectContaining({ path: "name" })]),
    });
    expectProblem(await h.anonymous.post("/workers/register", portWorker()), 401);
    expectProblem(
      await h.anonymous.as("nope-0123456789abcdef").post("/workers/register", portWorker()),
      401,
    );
    expectProblem(await h.manager.post("/workers/register", portWorker()), 403);
    expectProblem(await h.admin.post("/workers/register", portWorker()), 403);
  });
});

describe("GET /workers and GET /workers/{id}", () => {
  it("lists every worker, filtered by ?status=", async () => {
    const a = await registerWorker(h.registration, portWorker());
    const b = await registerWorker(h.registration, portWorker());
    expect((await h.manager.post(`/workers/${b.worker.id}/drain`)).status).toBe(200);

    const all = await h.admin.get<{ items: WorkerView[] }>("/workers");
    expect(all.status).toBe(200);
    const ids = all.body.items.map((w) => w.id);
    expect(ids).toEqual(expect.arrayContaining([a.worker.id, b.worker.id]));
    for (const w of all.body.items) expect(Object.keys(w).sort()).toEqual(WORKER_FIELDS);

    const draining = await h.manager.get<{ items: WorkerView[] }>("/workers?status=draining");
    expect(draining.status).toBe(200);
    expect(draining.body.items.map((w) => w.id)).toContain(b.worker.id);
    expect(draining.body.items.map((w) => w.id)).not.toContain(a.worker.id);
    for (const w of draining.body.items) expect(w.status).toBe("draining");

    const registered = await h.manager.get<{ items: WorkerView[] }>("/workers?status=registered");
    expect(registered.body.items.map((w) => w.id)).toContain(a.worker.id);
    expect(registered.body.items.map((w) => w.id)).not.toContain(b.worker.id);
    for (const w of registered.body.items) expect(w.status).toBe("registered");

    for (const status of ["alive", "lost"]) {
      const res = await h.manager.get<{ items: WorkerView[] }>(`/workers?status=${status}`);
      expect(res.status).toBe(200);
      for (const w of res.body.items) expect(w.status).toBe(status);
      expect(res.body.items.map((w) => w.id)).not.toContain(a.worker.id);
      expect(res.body.items.map((w) => w.id)).not.toContain(b.worker.id);
    }
  });

  it("answers 400 for an unknown status, 401 without a token, 403 for the registration token", async () => {
    expectProblem(await h.manager.get("/workers?status=asleep"), 400);
    expectProblem(await h.anonymous.get("/workers"), 401);
    expectProblem(await h.registration.get("/workers"), 403);
  });

  it("gets one worker, and 404 for an unknown id", async () => {
    const w = await registerWorker(h.registration, portWorker());
    const res = await h.admin.get<WorkerView>(`/workers/${w.worker.id}`);
    expect(res.status).toBe(200);
    expect(res.body).toEqual(w.worker);
    expectProblem(await h.manager.get(`/workers/${UNKNOWN_ID}`), 404);
    expectProblem(await h.manager.get("/workers/not-a-uuid"), 404);
    expectProblem(await h.registration.get(`/workers/${w.worker.id}`), 403);
    expectProblem(await h.anonymous.get(`/workers/${w.worker.id}`), 401);
  });
});

describe("POST /workers/{id}/drain and /undrain", () => {
  it("places no new route on a draining worker: it goes to another one, and back after undrain", async () => {
    const labels = pool("drain");
    const a = await registerWorker(h.registration, portWorker({ labels }));
    const b = await registerWorker(h.registration, portWorker({ labels }));
    const onB = await createRoute({ worker_id: b.worker.id, worker_selector: labels });
    const onA = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    // a holds 1 and b holds 1; a second on b makes a the least loaded.
    await createRoute({ worker_id: b.worker.id, worker_selector: labels });

    const head = await headVersion();
    const drained = await h.manager.post<WorkerView>(`/workers/${a.worker.id}/drain`);
    expect(drained.status).toBe(200);
    // Draining alone changes no route, so it takes no version.
    expect(drained.headers.get("x-routing-version")).toBe(String(head));
    expect(drained.body).toMatchObject({ id: a.worker.id, status: "draining", route_count: 1 });
    expect(Object.keys(drained.body).sort()).toEqual(WORKER_FIELDS);

    const placed = await createRoute({ worker_selector: labels });
    expect(placed.worker_id).toBe(b.worker.id);
    const pinned = await h.manager.post(
      "/routes",
      routeBody({ worker_id: a.worker.id, worker_selector: labels }),
    );
    expectProblem(pinned, 422);
    // Draining without migrate moves nothing.
    expect((await getRoute(onA.id)).body).toEqual(onA);
    expect((await getRoute(onB.id)).body).toEqual(onB);

    const undrained = await h.admin.post<WorkerView>(`/workers/${a.worker.id}/undrain`);
    expect(undrained.status).toBe(200);
    expect(undrained.headers.get("x-routing-version")).toBe(String(await headVersion()));
    expect(undrained.body).toMatchObject({ id: a.worker.id, status: "registered" });
    const back = await createRoute({ worker_selector: labels });
    expect(back.worker_id).toBe(a.worker.id);

    const again = await h.admin.post<WorkerView>(`/workers/${a.worker.id}/undrain`);
    expect(again.status).toBe(200);
    expect(again.body.status).toBe("registered");
  });

  it("answers 503 when the draining worker is the only one that could take the route", async () => {
    const labels = pool("only");
    const solo = await registerWorker(h.registration, portWorker({ labels }));
    const held = await createRoute({ worker_selector: labels });
    expect(held.worker_id).toBe(solo.worker.id);
    expect((await h.admin.post(`/workers/${solo.worker.id}/drain`)).status).toBe(200);

    const res = await h.manager.post("/routes", routeBody({ worker_selector: labels }));
    expectProblem(res, 503);
    expect(res.headers.get("retry-after")).toBeTruthy();

    // With migrate=true and nowhere to go, its route stays where it is.
    const head = await headVersion();
    const migrate = await h.manager.post<WorkerView>(
      `/workers/${solo.worker.id}/drain?migrate=true`,
    );
    expect(migrate.status).toBe(200);
    expect(migrate.body.route_count).toBe(1);
    expect((await getRoute(held.id)).body).toEqual(held);
    expect(await headVersion()).toBe(head);
  });

  it("with migrate=true moves every route to other workers in one version, keeping ports where free", async () => {
    const labels = pool("migrate");
    const a = await registerWorker(
      h.registration,
      portWorker({ port_range: [10200, 10209], labels, advertised_host: "a.example.com" }),
    );
    const b = await registerWorker(
      h.registration,
      portWorker({ port_range: [10200, 10209], labels, advertised_host: "b.example.com" }),
    );
    const pinned = (worker: WorkerAnswer, port: number) =>
      createRoute({ worker_id: worker.worker.id, worker_selector: labels, port });
    const r0 = await pinned(a, 10200);
    const r1 = await pinned(a, 10201);
    const r2 = await pinned(a, 10202);
    const resident = await pinned(b, 10201);
    const head = await headVersion();

    const res = await h.manager.post<WorkerView>(`/workers/${a.worker.id}/drain?migrate=true`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ id: a.worker.id, status: "draining", route_count: 0 });
    const version = Number(res.headers.get("x-routing-version"));
    expect(version).toBe(head + 1);
    expect(await headVersion()).toBe(version);

    expect(await routesOn(a.worker.id)).toEqual([]);
    const moved = await Promise.all([r0, r1, r2].map((r) => getRoute(r.id)));
    for (const m of moved) {
      expect(m.status).toBe(200);
      expect(m.body.worker_id).toBe(b.worker.id);
      expect(m.body.version).toBe(version);
      expect(m.headers.get("etag")).toBe(`"${version}"`);
      expect(m.body.url).toBe(`http://b.example.com:${m.body.port}/`);
    }
    // 10200 and 10202 were free on b and are kept; 10201 was not, so it gets b's lowest free port.
    expect(moved.map((m) => m.body.port)).toEqual([10200, 10203, 10202]);
    expect(moved[1]!.body).toEqual({
      ...r1,
      worker_id: b.worker.id,
      port: 10203,
      url: "http://b.example.com:10203/",
      version,
      updated_at: expect.any(String),
    });
    expect((await getRoute(resident.id)).body).toEqual(resident);
    expect((await getWorker(b.worker.id)).route_count).toBe(4);

    // The ports a gave up are free on it again once it is back.
    expect((await h.manager.post(`/workers/${a.worker.id}/undrain`)).status).toBe(200);
    const fresh = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    expect(fresh.port).toBe(10200);
  });

  it("with migrate=true keeps a route's subdomain where the new worker's domain has it free", async () => {
    const labels = pool("wild");
    const domain = `d-${short()}.example.com`;
    const a = await registerWorker(
      h.registration,
      wildcardWorker({ labels, wildcard_domain: domain }),
    );
    const b = await registerWorker(h.registration, wildcardWorker({ labels, tls: true }));
    const sameName = `app-${short()}`;
    const kept = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    const clash = await createRoute({
      worker_id: a.worker.id,
      worker_selector: labels,
      subdomain: sameName,
    });
    await createRoute({ worker_id: b.worker.id, worker_selector: labels, subdomain: sameName });

    const res = await h.manager.post(`/workers/${a.worker.id}/drain?migrate=true`);
    expect(res.status).toBe(200);
    const version = Number(res.headers.get("x-routing-version"));
    const keptNow = (await getRoute(kept.id)).body;
    expect(keptNow).toMatchObject({
      worker_id: b.worker.id,
      subdomain: kept.subdomain,
      url: `https://${kept.subdomain}.${b.worker.wildcard_domain as string}/`,
      version,
    });
    const clashNow = (await getRoute(clash.id)).body;
    expect(clashNow.worker_id).toBe(b.worker.id);
    expect(clashNow.version).toBe(version);
    expect(clashNow.subdomain).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    expect(clashNow.subdomain).not.toBe(sameName);
    expect(clashNow.url).toBe(
      `https://${clashNow.subdomain}.${b.worker.wildcard_domain as string}/`,
    );
  });

  it("spreads migrated routes over the eligible workers, least loaded first", async () => {
    const labels = pool("spread");
    const a = await registerWorker(h.registration, portWorker({ labels }));
    const b = await registerWorker(h.registration, portWorker({ labels }));
    const c = await registerWorker(h.registration, portWorker({ labels }));
    for (let i = 0; i < 4; i++)
      await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    const res = await h.manager.post(`/workers/${a.worker.id}/drain?migrate=true`);
    expect(res.status).toBe(200);
    expect((await routesOn(b.worker.id)).length).toBe(2);
    expect((await routesOn(c.worker.id)).length).toBe(2);
  });

  it("answers 404 for an unknown worker and 401/403 without the right token", async () => {
    expectProblem(await h.manager.post(`/workers/${UNKNOWN_ID}/drain`), 404);
    expectProblem(await h.manager.post(`/workers/${UNKNOWN_ID}/drain?migrate=true`), 404);
    expectProblem(await h.admin.post(`/workers/${UNKNOWN_ID}/undrain`), 404);
    const w = await registerWorker(h.registration, portWorker());
    expectProblem(await h.anonymous.post(`/workers/${w.worker.id}/drain`), 401);
    expectProblem(await h.registration.post(`/workers/${w.worker.id}/drain`), 403);
    expectProblem(await h.anonymous.as(w.token).post(`/workers/${w.worker.id}/undrain`), 403);
    expect((await getWorker(w.worker.id)).status).toBe("registered");
  });
});

describe("DELETE /workers/{id}", () => {
  it("moves its routes to other eligible workers in one version and answers 204", async () => {
    const labels = pool("delete");
    const a = await registerWorker(h.registration, portWorker({ labels }));
    const b = await registerWorker(h.registration, portWorker({ labels }));
    const r0 = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    const r1 = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    const head = await headVersion();

    const res = await h.manager.delete(`/workers/${a.worker.id}`);
    expect(res.status).toBe(204);
    expect(res.body).toBe("");
    const version = Number(res.headers.get("x-routing-version"));
    expect(version).toBe(head + 1);
    expect(await headVersion()).toBe(version);

    for (const r of [r0, r1]) {
      const read = await getRoute(r.id);
      expect(read.body).toMatchObject({ worker_id: b.worker.id, port: r.port, version });
    }
    expect((await getWorker(b.worker.id)).route_count).toBe(2);
    expectProblem(await h.manager.get(`/workers/${a.worker.id}`), 404);
    const list = await h.admin.get<{ items: WorkerView[] }>("/workers");
    expect(list.body.items.map((w) => w.id)).not.toContain(a.worker.id);
    expectProblem(await h.manager.delete(`/workers/${a.worker.id}`), 404);
    // A removed worker's token and stream are refused with 404.
    expect((await openStream(a.stream_url, a.token)).status).toBe(404);
    // Its name is free again: registering it makes a new worker.
    const reborn = await h.registration.post<WorkerAnswer>("/workers/register", {
      ...portWorker({ labels }),
      name: a.worker.name,
    });
    expect(reborn.status).toBe(201);
    expect(reborn.body.worker.id).not.toBe(a.worker.id);
    expect(reborn.body.routes).toEqual([]);
  });

  it("answers 409 naming the routes with nowhere to go and changes nothing; force=true deletes them", async () => {
    const labels = pool("strand");
    const a = await registerWorker(h.registration, portWorker({ labels }));
    // Somewhere for the route without a selector to go.
    await registerWorker(h.registration, portWorker({ labels: pool("elsewhere") }));
    const stranded = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    const movable = await createRoute({ worker_id: a.worker.id });
    const head = await headVersion();
    const workerBefore = await getWorker(a.worker.id);

    const refused = await h.manager.delete(`/workers/${a.worker.id}`);
    const problem = expectProblem(refused, 409);
    expect(problem.routes).toEqual([stranded.id]);
    expect(problem.detail).toContain(a.worker.name);
    expect(await getWorker(a.worker.id)).toEqual(workerBefore);
    expect((await getRoute(stranded.id)).body).toEqual(stranded);
    expect((await getRoute(movable.id)).body).toEqual(movable);
    expect(await headVersion()).toBe(head);

    const forced = await h.admin.delete(`/workers/${a.worker.id}?force=true`);
    expect(forced.status).toBe(204);
    const version = Number(forced.headers.get("x-routing-version"));
    expect(version).toBe(head + 1);
    expectProblem(await getRoute(stranded.id), 404);
    const moved = await getRoute(movable.id);
    expect(moved.body.worker_id).not.toBe(a.worker.id);
    expect(moved.body.version).toBe(version);
    expectProblem(await h.manager.get(`/workers/${a.worker.id}`), 404);
  });

  it("counts the other workers' capacity: what does not fit is named in the 409", async () => {
    const labels = pool("room");
    const a = await registerWorker(h.registration, portWorker({ labels }));
    const b = await registerWorker(h.registration, portWorker({ labels, capacity: 1 }));
    const r0 = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    const r1 = await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    const refused = expectProblem(await h.manager.delete(`/workers/${a.worker.id}`), 409);
    expect(refused.routes).toHaveLength(1);
    expect([r0.id, r1.id]).toContain(refused.routes![0]);
    expect((await getWorker(b.worker.id)).route_count).toBe(0);

    expect((await h.manager.delete(`/workers/${a.worker.id}?force=true`)).status).toBe(204);
    expectProblem(await getRoute(refused.routes![0]!), 404);
    const survivor = [r0, r1].find((r) => r.id !== refused.routes![0])!;
    expect((await getRoute(survivor.id)).body.worker_id).toBe(b.worker.id);
    expect((await getWorker(b.worker.id)).route_count).toBe(1);
  });

  it("answers 404 for an unknown worker and 401/403 without the right token", async () => {
    expectProblem(await h.manager.delete(`/workers/${UNKNOWN_ID}`), 404);
    expectProblem(await h.manager.delete(`/workers/${UNKNOWN_ID}?force=true`), 404);
    const w = await registerWorker(h.registration, portWorker());
    expectProblem(await h.anonymous.delete(`/workers/${w.worker.id}`), 401);
    expectProblem(await h.registration.delete(`/workers/${w.worker.id}`), 403);
    expectProblem(await h.anonymous.as(w.token).delete(`/workers/${w.worker.id}`), 403);
    expect((await getWorker(w.worker.id)).id).toBe(w.worker.id);
  });
});

describe("placement", () => {
  it("places on the least loaded worker that can take the route", async () => {
    const labels = pool("load");
    const ws = [];
    for (const name of ["lb-a", "lb-b", "lb-c"]) {
      ws.push(
        await registerWorker(h.registration, portWorker({ name: `${name}-${short()}`, labels })),
      );
    }
    const [a, b, c] = ws as [WorkerAnswer, WorkerAnswer, WorkerAnswer];
    await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    await createRoute({ worker_id: a.worker.id, worker_selector: labels });
    await createRoute({ worker_id: b.worker.id, worker_selector: labels });

    const first = await createRoute({ worker_selector: labels });
    expect(first.worker_id).toBe(c.worker.id);
    const second = await createRoute({ worker_selector: labels });
    expect([b.worker.id, c.worker.id]).toContain(second.worker_id);
    const batch = await h.manager.post<{ items: RouteAnswer[] }>("/routes/batch", {
      routes: Array.from({ length: 4 }, () => routeBody({ worker_selector: labels })),
    });
    expect(batch.status).toBe(201);
    const counts = await Promise.all(
      ws.map(async (w) => (await getWorker(w.worker.id)).route_count),
    );
    expect(counts).toEqual([3, 3, 3]);
  });

  it("places only on workers that serve the route's protocol", async () => {
    const labels = pool("proto");
    const httpOnly = await registerWorker(
      h.registration,
      portWorker({ protocols: ["http"], labels, advertised_host: "h.example.com" }),
    );
    const both = await registerWorker(
      h.registration,
      portWorker({ protocols: ["http", "tcp"], labels, advertised_host: "t.example.com" }),
    );
    await createRoute({ worker_id: both.worker.id, worker_selector: labels });

    const tcp = await createRoute({ worker_selector: labels, protocol: "tcp" });
    expect(tcp.worker_id).toBe(both.worker.id);
    expect(tcp.url).toBe(`tcp://t.example.com:${tcp.port}`);
    const http = await createRoute({ worker_selector: labels, protocol: "http" });
    expect(http.worker_id).toBe(httpOnly.worker.id);
    const grpc = await h.manager.post(
      "/routes",
      routeBody({ worker_selector: labels, protocol: "grpc" }),
    );
    expectProblem(grpc, 503);
    const pinned = await h.manager.post(
      "/routes",
      routeBody({ worker_selector: labels, protocol: "tcp", worker_id: httpOnly.worker.id }),
    );
    expectProblem(pinned, 422);
  });

  it("places only on workers that serve the route's mode", async () => {
    const labels = pool("mode");
    const interactive = await registerWorker(
      h.registration,
      portWorker({ modes: ["interactive"], labels }),
    );
    const inference = await registerWorker(
      h.registration,
      portWorker({ modes: ["inference"], labels }),
    );
    for (let i = 0; i < 2; i++) {
      const r = await createRoute({ worker_selector: labels, mode: "inference" });
      expect(r.worker_id).toBe(inference.worker.id);
    }
    const r = await createRoute({ worker_selector: labels, mode: "interactive" });
    expect(r.worker_id).toBe(interactive.worker.id);
  });

  it("places only on workers carrying every label of the worker_selector", async () => {
    const labels = pool("select");
    const gpu = await registerWorker(
      h.registration,
      portWorker({ labels: { ...labels, gpu: "a100", zone: "b" } }),
    );
    const plain = await registerWorker(h.registration, portWorker({ labels }));
    await createRoute({ worker_id: gpu.worker.id, worker_selector: labels });
    await createRoute({ worker_id: gpu.worker.id, worker_selector: labels });

    const onGpu = await createRoute({ worker_selector: { ...labels, gpu: "a100" } });
    expect(onGpu.worker_id).toBe(gpu.worker.id);
    const both = await createRoute({ worker_selector: { ...labels, gpu: "a100", zone: "b" } });
    expect(both.worker_id).toBe(gpu.worker.id);
    const anywhere = await createRoute({ worker_selector: labels });
    expect(anywhere.worker_id).toBe(plain.worker.id);
    expectProblem(
      await h.manager.post("/routes", routeBody({ worker_selector: { ...labels, gpu: "h100" } })),
      503,
    );
    expectProblem(
      await h.manager.post(
        "/routes",
        routeBody({ worker_selector: { ...labels, gpu: "a100" }, worker_id: plain.worker.id }),
      ),
      422,
    );
  });

  it("gives a dedicated worker only routes with a non-empty selector it matches", async () => {
    const labels = pool("dedicated");
    // Named to come first among the least loaded, so only the dedicated rule keeps routes off it.
    const dedicated = await registerWorker(
      h.registration,
      portWorker({ name: `0-ded-${short()}`, labels, dedicated: true }),
    );
    expect(dedicated.worker.dedicated).toBe(true);
    const shared = await registerWorker(h.registration, portWorker({ labels }));
    await createRoute({ worker_id: shared.worker.id, worker_selector: labels });

    const unselected = await createRoute({});
    expect(unselected.worker_id).not.toBe(dedicated.worker.id);
    expectProblem(
      await h.manager.post("/routes", routeBody({ worker_id: dedicated.worker.id })),
      422,
    );
    const other = await h.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_selector: { elsewhere: short() } }),
    );
    expectProblem(other, 503);

    const selected = await createRoute({ worker_selector: labels });
    expect(selected.worker_id).toBe(dedicated.worker.id);
    const pinned = await createRoute({ worker_id: dedicated.worker.id, worker_selector: labels });
    expect(pinned.worker_id).toBe(dedicated.worker.id);
    expect((await getWorker(dedicated.worker.id)).route_count).toBe(2);
  });

  it("respects capacity and free ports", async () => {
    const labels = pool("capacity");
    const small = await registerWorker(h.registration, portWorker({ capacity: 1, labels }));
    const first = await createRoute({ worker_selector: labels });
    expect(first.worker_id).toBe(small.worker.id);
    const full = await h.manager.post("/routes", routeBody({ worker_selector: labels }));
    expectProblem(full, 503);
    expect(full.headers.get("retry-after")).toBeTruthy();
    expectProblem(
      await h.manager.post(
        "/routes",
        routeBody({ worker_id: small.worker.id, worker_selector: labels }),
      ),
      503,
    );

    const twoPorts = await registerWorker(
      h.registration,
      portWorker({ port_range: [10500, 10501], labels }),
    );
    const p0 = await createRoute({ worker_selector: labels });
    const p1 = await createRoute({ worker_selector: labels });
    expect([p0.worker_id, p1.worker_id]).toEqual([twoPorts.worker.id, twoPorts.worker.id]);
    expect([p0.port, p1.port]).toEqual([10500, 10501]);
    expectProblem(await h.manager.post("/routes", routeBody({ worker_selector: labels })), 503);

    // Room again once a route is gone.
    expect((await h.manager.delete(`/routes/${first.id}`)).status).toBe(204);
    const again = await createRoute({ worker_selector: labels });
    expect(again.worker_id).toBe(small.worker.id);
  });
});
