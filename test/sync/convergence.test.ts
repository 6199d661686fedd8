import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  TableMismatchError,
  WorkerClient,
  type DisconnectedEvent,
  type TableChange,
  type WorkerRegistration,
} from "../../src/client/index.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { TOKENS, startInstance, waitFor, type Api, type TestInstance } from "../support/harness.js";
import type { RouteAnswer } from "../support/factories.js";
import { expectedDigest, listRoutes, routesOfWorker } from "./stream-client.js";

const WORKERS = 20;
const MUTATIONS = 2000;
const IN_FLIGHT = 8;
/** Steps at which a worker is removed (force=true); its client registers again by itself. */
const REMOVALS = new Set([500, 1000, 1500]);
const SEED = Number(process.env.CONVERGENCE_SEED ?? 20261127);

/** mulberry32, seeded: every run draws the same kind of mix (the interleaving still varies). */
function generator(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = generator(SEED);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const chance = (p: number) => random() < p;

/** One worker process as the test watches it through the client's events. */
interface Watched {
  name: string;
  client: WorkerClient;
  instance: TestInstance;
  /** Every id this worker had; a removal gives it a new one when it registers again. */
  ids: string[];
  lastTo: number;
  gaps: string[];
  mismatches: Error[];
  errors: Error[];
  connects: number;
  disconnects: DisconnectedEvent[];
}

let testDb: TestDatabase;
let a: TestInstance;
let b: TestInstance;
const watched: Watched[] = [];

function registration(i: number): WorkerRegistration {
  const common = {
    name: `conv-${i}`,
    advertised_host: `10.20.0.${i + 1}`,
    protocols: ["http", "tcp"] as WorkerRegistration["protocols"],
    labels: { zone: i % 3 === 0 ? "north" : "south" },
  };
  return i % 5 === 4
    ? { ...common, frontend_mode: "wildcard", wildcard_domain: `conv-${i}.apps.example.com` }
    : { ...common, frontend_mode: "port", port_range: [20000 + i * 500, 20000 + i * 500 + 499] };
}

function watch(i: number, instance: TestInstance): Watched {
  const client = new WorkerClient({
    coordinatorUrl: instance.url,
    registrationToken: TOKENS.registration,
    registration: registration(i),
    reconnectMinMs: 20,
    reconnectMaxMs: 200,
  });
  const w: Watched = {
    name: `conv-${i}`,
    client,
    instance,
    ids: [],
    lastTo: 0,
    gaps: [],
    mismatches: [],
    errors: [],
    connects: 0,
    disconnects: [],
  };
  client.on("registered", (e) => {
    if (w.ids.at(-1) !== e.workerId) w.ids.push(e.workerId);
  });
  client.on("change", (change: TableChange) => {
    if (change.from !== w.lastTo || change.to < change.from) {
      w.gaps.push(`${w.lastTo} then ${change.from}→${change.to}`);
    }
    w.lastTo = change.to;
  });
  client.on("connected", () => (w.connects += 1));
  client.on("disconnected", (e) => w.disconnects.push(e));
  client.on("error", (error) => {
    // A refused diff or snapshot: the client asked for a resync (or nacked a snapshot).
    if (error instanceof TableMismatchError) w.mismatches.push(error);
    else w.errors.push(error);
  });
  return w;
}

beforeAll(async () => {
  testDb = await createTestDatabase();
  a = await startInstance(await testDb.open());
  b = await startInstance(await testDb.open());
  for (let i = 0; i < WORKERS; i++) watched.push(watch(i, i % 2 === 0 ? a : b));
  await Promise.all(watched.map((w) => w.client.start()));
  await waitFor(
    async () => {
      for (const w of watched) {
        const res = await a.admin.get<{ connected: boolean }>(`/workers/${w.client.workerId}`);
        if (!res.body.connected) return false;
      }
      return true;
    },
    20_000,
    "every worker connected",
  );
});

afterAll(async () => {
  await Promise.all(watched.map((w) => w.client.stop()));
  await a?.stop();
  await b?.stop();
  await testDb?.drop();
});

/** What the test knows of the routes it created (deletes elsewhere may make some stale). */
const known: string[] = [];
const sessions = Array.from({ length: 80 }, (_, i) => `conv-sess-${i}`);

function forget(id: string): void {
  const at = known.indexOf(id);
  if (at >= 0) {
    known[at] = known[known.length - 1]!;
    known.pop();
  }
}

function newRoute(pinTo?: string): Record<string, unknown> {
  const tcp = chance(0.2);
  return {
    session_id: pick(sessions),
    app: tcp ? "ssh" : pick(["jupyter", "tensorboard", "vscode"]),
    protocol: tcp ? "tcp" : "http",
    mode: chance(0.3) ? "inference" : "interactive",
    upstreams: Array.from({ length: 1 + Math.floor(random() * 3) }, (_, k) => ({
      host: `10.0.${Math.floor(random() * 250)}.${k + 1}`,
      port: 8000 + Math.floor(random() * 1000),
      weight: 1,
    })),
    labels: { owner: `u${Math.floor(random() * 50)}` },
    ...(chance(0.1) ? { worker_selector: { zone: "north" } } : {}),
    ...(pinTo ? { worker_id: pinTo } : {}),
  };
}

interface Outcome {
  what: string;
  status: number;
  version: number | undefined;
  detail?: string;
}

/** One random mutation through one of the two instances. */
async function mutation(step: number): Promise<Outcome[]> {
  const api: Api = chance(0.5) ? a.manager : b.manager;
  const outcomes: Outcome[] = [];
  const call = async <T>(what: string, method: string, path: string, body?: unknown) => {
    const res = await api.request<T>(method, path, body);
    const header = res.headers.get("x-routing-version");
    outcomes.push({
      what,
      status: res.status,
      version: header === null ? undefined : Number(header),
      ...(res.status >= 400 ? { detail: JSON.stringify(res.body).slice(0, 300) } : {}),
    });
    return res;
  };
  const liveId = () => pick(watched).client.workerId!;

  if (REMOVALS.has(step)) {
    const victim = watched[(step / 500) * 3]!;
    await call("remove worker", "DELETE", `/workers/${victim.client.workerId}?force=true`);
    return outcomes;
  }
  const roll = random();
  if (roll < 0.35) {
    const res = await call<RouteAnswer>(
      "create",
      "POST",
      "/routes",
      newRoute(chance(0.4) ? liveId() : undefined),
    );
    if (res.status === 201) known.push(res.body.id);
  } else if (roll < 0.43) {
    const routes = Array.from({ length: 2 + Math.floor(random() * 5) }, () => newRoute());
    const res = await call<{ items: RouteAnswer[] }>("batch", "POST", "/routes/batch", { routes });
    if (res.status === 201) known.push(...res.body.items.map((r) => r.id));
  } else if (roll < 0.65 && known.length > 0) {
    await call("patch", "PATCH", `/routes/${pick(known)}`, {
      upstreams: [{ host: "10.1.0.1", port: 9000 + Math.floor(random() * 1000), weight: 1 }],
      labels: { owner: `u${Math.floor(random() * 50)}`, patched: "yes" },
      open_to_public: chance(0.5),
    });
  } else if (roll < 0.82 && known.length > 0) {
    const id = pick(known);
    forget(id);
    await call("delete", "DELETE", `/routes/${id}`);
  } else if (roll < 0.88) {
    await call("delete session", "DELETE", `/routes?session_id=${pick(sessions)}`);
  } else if (roll < 0.9) {
    const id = liveId();
    await call("drain", "POST", `/workers/${id}/drain?migrate=true`);
    await call("undrain", "POST", `/workers/${id}/undrain`);
  } else {
    const res = await call<RouteAnswer>("create", "POST", "/routes", newRoute());
    if (res.status === 201) known.push(res.body.id);
  }
  return outcomes;
}

/** What each kind of request may answer under concurrency; anything else is a failure. */
const ALLOWED: Record<string, number[]> = {
  create: [201, 422, 503],
  batch: [201, 503],
  patch: [200, 404],
  delete: [204, 404],
  "delete session": [200],
  drain: [200, 404],
  undrain: [200, 404],
  "remove worker": [204, 404],
};

describe("20 workers on two instances under 2,000 random mutations", () => {
  it("end with every worker holding exactly its table, reached without a gap or a resync", async () => {
    const outcomes: Outcome[] = [];
    let step = 0;
    const runner = async () => {
      while (step < MUTATIONS) outcomes.push(...(await mutation(step++)));
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, runner));

    const unexpected = outcomes.filter((o) => !ALLOWED[o.what]!.includes(o.status));
    expect(unexpected, `seed ${SEED}`).toEqual([]);
    const committed = outcomes.filter((o) => o.status < 300);
    expect(committed.length).toBeGreaterThan(MUTATIONS * 0.8);

    // Every answer carries X-Routing-Version, so the highest one is the head once all answered.
    const head = Math.max(...outcomes.map((o) => o.version ?? 0));

    await waitFor(
      async () => {
        for (const w of watched) {
          if (w.client.table.version !== head) return false;
          const res = await a.admin.get<{
            applied_version: number;
            connected: boolean;
            status: string;
          }>(`/workers/${w.client.workerId}`);
          const { applied_version, connected, status } = res.body;
          if (res.status !== 200 || applied_version !== head || !connected || status !== "alive") {
            return false;
          }
        }
        return true;
      },
      30_000,
      "every worker at the head, acknowledged",
    );

    let total = 0;
    for (const w of watched) {
      const expected = await routesOfWorker<RouteAnswer>(b.admin, w.client.workerId!);
      const held = w.client.table.routes.map((r) => `${r.id} ${r.version}`);
      expect(held, w.name).toEqual(
        [...expected].sort((x, y) => (x.id < y.id ? -1 : 1)).map((r) => `${r.id} ${r.version}`),
      );
      expect(w.client.table.digest, w.name).toBe(expectedDigest(expected));
      for (const r of expected) {
        expect(w.client.table.get(r.id), `${w.name} ${r.id}`).toMatchObject({
          url: r.url,
          port: r.port,
          subdomain: r.subdomain,
          upstreams: r.upstreams,
        });
      }
      total += expected.length;
    }
    // Every route is on exactly one live worker's table.
    expect((await listRoutes(a.admin)).length).toBe(total);

    // After creates, deletes, moves and removals, a port-mode worker's route_count is its routes
    // and its free ports are exactly its range less its routes' ports.
    const db = await testDb.open();
    const { rows } = await db.knex.raw<{ rows: Array<Record<string, number | string>> }>(
      `SELECT w.name, w.route_count,
         (SELECT count(*) FROM routes r WHERE r.worker_id = w.id)::int AS routes,
         w.free_port_ranges = int4multirange(int4range(w.port_lo, w.port_hi, '[]')) - COALESCE(
           (SELECT range_agg(int4range(r.port, r.port, '[]')) FROM routes r WHERE r.worker_id = w.id),
           '{}') AS free_ports_exact
       FROM workers w WHERE w.frontend_mode = 'port'`,
    );
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row, String(row.name)).toEqual({
        ...row,
        route_count: row.routes,
        free_ports_exact: true,
      });
    }

    for (const w of watched) {
      expect(w.gaps, `${w.name} versions`).toEqual([]);
      expect(w.mismatches.map(String), `${w.name} resyncs`).toEqual([]);
    }
    // Only removed workers lost their stream (4404), then came back under a new identity.
    const removed = watched.filter((w) => w.ids.length > 1);
    expect(removed.length).toBe(REMOVALS.size);
    for (const w of watched) {
      const codes = w.disconnects.map((d) => d.code);
      if (w.ids.length > 1) {
        expect(codes, w.name).toEqual([4404]);
        expect(w.connects, w.name).toBe(2);
        const old = await a.admin.get(`/workers/${w.ids[0]}`);
        expect(old.status).toBe(404);
        // What it was told: the coordinator's error frame, then the refused upgrade (404).
        for (const error of w.errors) {
          expect(String(error), w.name).toMatch(/worker_removed|HTTP 404/);
        }
      } else {
        expect(codes, w.name).toEqual([]);
        expect(w.connects, w.name).toBe(1);
        expect(w.errors.map(String), w.name).toEqual([]);
      }
    }
  }, 180_000);
});
