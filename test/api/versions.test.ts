import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { startInstance, type Api, type ApiAnswer, type TestInstance } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  wildcardWorker,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";

const CHAINS = 60;
/** Each chain makes five changes that succeed, so the run takes versions 1…300. */
const CHANGES_PER_CHAIN = 5;
const TOTAL = CHAINS * CHANGES_PER_CHAIN;
const PINNED_PORT_BASE = 30900;

type Kind =
  "routes.create" | "routes.batch" | "routes.patch" | "routes.delete" | "routes.delete_session";

/** A mutation that succeeded, as the caller saw it. */
interface Success {
  chain: number;
  kind: Kind;
  version: number;
  /** Routes the change touched. */
  routeIds: string[];
  /** The route as answered, for creates and patches. */
  routes: RouteAnswer[];
}

interface Failure {
  chain: number;
  what: string;
  status: number;
  expected: number;
  routingVersion: string | null;
  contentType: string | null;
}

let testDb: TestDatabase;
let databases: Database[] = [];
let instances: TestInstance[] = [];
let portW: WorkerAnswer;
let wildW: WorkerAnswer;

beforeAll(async () => {
  testDb = await createTestDatabase();
  // On PostgreSQL each open() is a pool of its own; on the embedded database both share one PGlite.
  databases = [await testDb.open(), await testDb.open()];
  // No stream ever connects: keep the reaper from failing routes over, which would take versions.
  const env = { WORKER_LOST_AFTER_S: "3600" };
  instances = [await startInstance(databases[0]!, env), await startInstance(databases[1]!, env)];
  portW = await registerWorker(
    instances[0]!.registration,
    portWorker({ port_range: [30000, 30999] }),
  );
  wildW = await registerWorker(instances[1]!.registration, wildcardWorker());
});

afterAll(async () => {
  for (const instance of instances) await instance.stop();
  await testDb?.drop();
});

const knex = () => databases[0]!.knex;
const manager = (n: number): Api => instances[n % 2]!.manager;

function versionOf(answer: ApiAnswer): number {
  const header = answer.headers.get("x-routing-version");
  expect(header, `X-Routing-Version of a ${answer.status}`).toMatch(/^\d+$/);
  return Number(header);
}

async function headVersion(): Promise<number> {
  const row = (await knex()("routing_state").where({ id: 1 }).first("version")) as {
    version: number | string;
  };
  return Number(row.version);
}

/** Drives one session's life through both instances; every step waits for the one before. */
async function runChain(chain: number, successes: Success[], failures: Failure[]): Promise<void> {
  const session = `chain-${chain}-${randomUUID()}`;
  let step = 0;
  const api = () => manager(chain + step++);
  const ok = (
    answer: ApiAnswer,
    status: number,
    kind: Kind,
    routes: RouteAnswer[],
    ids?: string[],
  ) => {
    expect(answer.status, `${kind} in chain ${chain}: ${JSON.stringify(answer.body)}`).toBe(status);
    const version = versionOf(answer);
    successes.push({ chain, kind, version, routes, routeIds: ids ?? routes.map((r) => r.id) });
    return version;
  };
  const refused = (what: string, answer: ApiAnswer, expected: number) =>
    failures.push({
      chain,
      what,
      status: answer.status,
      expected,
      routingVersion: answer.headers.get("x-routing-version"),
      contentType: answer.headers.get("content-type"),
    });

  const port = PINNED_PORT_BASE + chain;
  const created = await api().post<RouteAnswer>(
    "/routes",
    routeBody({ session_id: session, worker_id: portW.worker.id, port }),
  );
  const createdVersion = ok(created, 201, "routes.create", [created.body]);
  expect(created.body.version).toBe(createdVersion);
  expect(created.headers.get("etag")).toBe(`"${createdVersion}"`);
  const routeId = created.body.id;

  // A request that fails in the middle of the others must take no version.
  if (chain % 3 === 0) {
    const taken = await api().post(
      "/routes",
      routeBody({ session_id: session, worker_id: portW.worker.id, port }),
    );
    refused("create on a taken port", taken, 409);
  } else if (chain % 3 === 1) {
    const batch = await api().post("/routes/batch", {
      routes: [
        routeBody({ session_id: session }),
        routeBody({ session_id: session, worker_id: portW.worker.id, port }),
      ],
    });
    refused("batch with a taken port", batch, 409);
  } else {
    const unknown = await api().post(
      "/routes",
      routeBody({ session_id: session, worker_id: randomUUID() }),
    );
    refused("create on an unknown worker", unknown, 422);
  }

  const patched = await api().patch<RouteAnswer>(`/routes/${routeId}`, {
    labels: { chain: String(chain), step: "patched" },
  });
  ok(patched, 200, "routes.patch", [patched.body]);

  const batch = await api().post<{ version: number; items: RouteAnswer[] }>("/routes/batch", {
    routes: [
      routeBody({ session_id: session, app: "tensorboard" }),
      routeBody({ session_id: session, worker_id: wildW.worker.id, subdomain: `chain-${chain}` }),
    ],
  });
  const batchVersion = ok(batch, 201, "routes.batch", batch.body.items);
  expect(batch.body.version).toBe(batchVersion);
  expect(batch.body.items.map((r) => r.version)).toEqual([batchVersion, batchVersion]);

  const stale = await api().patch(
    `/routes/${batch.body.items[0]!.id}`,
    { open_to_public: true },
    { "if-match": '"0"' },
  );
  refused("patch with a stale If-Match", stale, 412);

  const opened = await api().patch<RouteAnswer>(`/routes/${batch.body.items[1]!.id}`, {
    open_to_public: true,
  });
  ok(opened, 200, "routes.patch", [opened.body]);

  if (chain % 4 === 0) {
    const gone = await api().delete<{ deleted: number; version: number }>(
      `/routes?session_id=${encodeURIComponent(session)}`,
    );
    const ids = [routeId, ...batch.body.items.map((r) => r.id)];
    const version = ok(gone, 200, "routes.delete_session", [], ids);
    expect(gone.body).toEqual({ deleted: 3, version });
  } else {
    const gone = await api().delete(`/routes/${routeId}`);
    ok(gone, 204, "routes.delete", [], [routeId]);
  }

  const missing = await api().delete(`/routes/${randomUUID()}`);
  refused("delete of a route that does not exist", missing, 404);
}

describe("versions with two instances on one database", () => {
  const successes: Success[] = [];
  const failures: Failure[] = [];

  it(`give ${TOTAL} concurrent mutations the versions 1…${TOTAL}, each exactly once`, async () => {
    expect(await headVersion()).toBe(0);
    // Settle every chain before judging, so that a failing one leaves nothing running behind.
    const settled = await Promise.allSettled(
      Array.from({ length: CHAINS }, (_, chain) => runChain(chain, successes, failures)),
    );
    for (const s of settled) if (s.status === "rejected") throw s.reason;

    expect(successes).toHaveLength(TOTAL);
    expect(successes.map((s) => s.version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: TOTAL }, (_, i) => i + 1),
    );
    // Each chain saw its own changes in the order it made them.
    for (let chain = 0; chain < CHAINS; chain++) {
      const versions = successes.filter((s) => s.chain === chain).map((s) => s.version);
      expect(versions).toEqual([...versions].sort((a, b) => a - b));
    }
    for (const f of failures) {
      expect(f.status, `${f.what} in chain ${f.chain}`).toBe(f.expected);
      // The version the refusal saw: one the successes made, not one of its own.
      expect(f.routingVersion).toMatch(/^\d+$/);
      expect(Number(f.routingVersion)).toBeLessThanOrEqual(TOTAL);
      expect(f.contentType).toMatch(/^application\/problem\+json/);
    }
    expect(await headVersion()).toBe(TOTAL);
  });

  it("leave a change log that holds every version in order, gap-free, with what it did", async () => {
    const byVersion = new Map(successes.map((s) => [s.version, s]));
    const changes = (await knex()("changes").orderBy("version").select()) as Array<{
      version: number | string;
      kind: string;
      committed_at: Date;
    }>;
    expect(changes.map((c) => Number(c.version))).toEqual(
      Array.from({ length: TOTAL }, (_, i) => i + 1),
    );
    for (const c of changes) expect(c.kind).toBe(byVersion.get(Number(c.version))!.kind);
    // Versions were committed in their order: commit times never go backwards.
    for (let i = 1; i < changes.length; i++) {
      expect(new Date(changes[i]!.committed_at).getTime()).toBeGreaterThanOrEqual(
        new Date(changes[i - 1]!.committed_at).getTime(),
      );
    }

    const entries = (await knex()("change_entries")
      .orderBy(["version", "route_id"])
      .select("version", "route_id", "op")) as Array<{
      version: number | string;
      route_id: string;
      op: string;
    }>;
    const touched = new Map<number, Set<string>>();
    for (const e of entries) {
      const v = Number(e.version);
      const s = byVersion.get(v);
      expect(s, `entry of version ${v}`).toBeDefined();
      const deleting = s!.kind === "routes.delete" || s!.kind === "routes.delete_session";
      expect(e.op).toBe(deleting ? "delete" : "upsert");
      touched.set(v, (touched.get(v) ?? new Set()).add(e.route_id));
    }
    for (const s of successes) {
      expect([...(touched.get(s.version) ?? [])].sort(), `routes of version ${s.version}`).toEqual(
        [...s.routeIds].sort(),
      );
    }
  });

  it("give every route the version of its last change, as both instances show it", async () => {
    const lastAnswer = new Map<string, RouteAnswer>();
    const deleted = new Set<string>();
    for (const s of [...successes].sort((a, b) => a.version - b.version)) {
      for (const r of s.routes) lastAnswer.set(r.id, r);
      if (s.kind === "routes.delete" || s.kind === "routes.delete_session") {
        for (const id of s.routeIds) deleted.add(id);
      }
    }
    const expected = [...lastAnswer.values()]
      .filter((r) => !deleted.has(r.id))
      .sort((a, b) => (a.id < b.id ? -1 : 1));
    // Chains that deleted one route keep their batch's two; those that deleted the session keep none.
    const sessionDeletes = Array.from({ length: CHAINS }, (_, i) => i).filter((i) => i % 4 === 0);
    expect(expected).toHaveLength((CHAINS - sessionDeletes.length) * 2);

    for (const instance of instances) {
      const listed = await instance.admin.get<{ items: RouteAnswer[]; next_cursor: null }>(
        "/routes?limit=1000",
      );
      expect(listed.status).toBe(200);
      expect(listed.body.next_cursor).toBeNull();
      expect(listed.body.items).toEqual(expected);
    }

    const rows = (await knex()("routes").select("id", "version")) as Array<{
      id: string;
      version: number | string;
    }>;
    const lastChange = (await knex()("change_entries")
      .groupBy("route_id")
      .select("route_id")
      .max("version as version")) as Array<{ route_id: string; version: number | string }>;
    const lastOf = new Map(lastChange.map((r) => [r.route_id, Number(r.version)]));
    expect(rows).toHaveLength(expected.length);
    for (const row of rows) expect(Number(row.version)).toBe(lastOf.get(row.id));

    // The workers' counts agree with the table.
    for (const w of [portW, wildW]) {
      const [{ n }] = (await knex()("routes")
        .where({ worker_id: w.worker.id })
        .count("* as n")) as [{ n: number | string }];
      const read = await instances[1]!.admin.get<{ route_count: number }>(
        `/workers/${w.worker.id}`,
      );
      expect(read.body.route_count).toBe(Number(n));
    }
  });

  it("take no version for a failed request between two that succeed", async () => {
    const head = await headVersion();
    const [a, b] = [instances[0]!.manager, instances[1]!.manager];
    const port = PINNED_PORT_BASE + CHAINS + 1;

    const first = await a.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_id: portW.worker.id, port }),
    );
    expect(first.status).toBe(201);
    expect(versionOf(first)).toBe(head + 1);

    const taken = await b.post("/routes", routeBody({ worker_id: portW.worker.id, port }));
    expect(taken.status).toBe(409);
    // Refused under the routing lock on the other instance: the version it saw there, exactly.
    expect(taken.headers.get("x-routing-version")).toBe(String(head + 1));
    const badBatch = await a.post("/routes/batch", {
      routes: [routeBody(), routeBody({ worker_id: portW.worker.id, port })],
    });
    expect(badBatch.status).toBe(409);
    expect(badBatch.headers.get("x-routing-version")).toBe(String(head + 1));
    const stale = await b.patch(
      `/routes/${first.body.id}`,
      { open_to_public: true },
      { "if-match": `"${head}"` },
    );
    expect(stale.status).toBe(412);
    expect(stale.headers.get("x-routing-version")).toBe(String(head + 1));

    const second = await b.patch<RouteAnswer>(
      `/routes/${first.body.id}`,
      { open_to_public: true },
      { "if-match": `"${first.body.version}"` },
    );
    expect(second.status).toBe(200);
    expect(versionOf(second)).toBe(head + 2);
    expect(second.body.version).toBe(head + 2);

    const third = await a.delete(`/routes/${first.body.id}`, { "if-match": `"${head + 2}"` });
    expect(third.status).toBe(204);
    expect(versionOf(third)).toBe(head + 3);

    const changes = (await knex()("changes")
      .where("version", ">", head)
      .orderBy("version")
      .select("version", "kind")) as Array<{ version: number | string; kind: string }>;
    expect(changes.map((c) => [Number(c.version), c.kind])).toEqual([
      [head + 1, "routes.create"],
      [head + 2, "routes.patch"],
      [head + 3, "routes.delete"],
    ]);
    expect(await headVersion()).toBe(head + 3);
  });

  it("take no version for a patch that changes nothing, whatever the order of its keys", async () => {
    const created = await instances[0]!.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_id: portW.worker.id, labels: { team: "ml", a: "1", zone: "eu-1" } }),
    );
    expect(created.status).toBe(201);
    const head = await headVersion();
    expect(created.body.version).toBe(head);

    const same = await instances[1]!.manager.patch<RouteAnswer>(`/routes/${created.body.id}`, {
      labels: { zone: "eu-1", a: "1", team: "ml" },
      open_to_public: false,
      upstreams: created.body.upstreams,
    });
    expect(same.status).toBe(200);
    expect(versionOf(same)).toBe(head);
    expect(same.body).toEqual(created.body);
    expect(await headVersion()).toBe(head);

    const changed = await instances[0]!.manager.patch<RouteAnswer>(`/routes/${created.body.id}`, {
      labels: { zone: "eu-2", a: "1", team: "ml" },
    });
    expect(versionOf(changed)).toBe(head + 1);
    expect(changed.body.version).toBe(head + 1);
  });
});
