import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { resolveSecrets } from "../../src/auth/secrets.js";
import { ConfigError, loadConfig } from "../../src/config.js";
import { openDatabase, type Database } from "../../src/db/database.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { TOKENS, startInstance, type ApiAnswer, type TestInstance } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  wildcardWorker,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";

interface WorkerView {
  id: string;
  name: string;
  route_count: number;
  [key: string]: unknown;
}

/** What the first instance answered, to hold the second one to. */
interface Written {
  portRegistration: Record<string, unknown>;
  wildRegistration: Record<string, unknown>;
  portWorker: WorkerAnswer;
  routes: Map<string, RouteAnswer>;
  deleted: string[];
  version: number;
  workers: WorkerView[];
  freedPort: number;
}

/** No stream ever connects: keep the reaper from marking the workers lost between the reads. */
const NO_LIVENESS = { WORKER_LOST_AFTER_S: "3600" };

const tempDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

function versionOf(answer: ApiAnswer): number {
  return Number(answer.headers.get("x-routing-version"));
}

async function listAll(instance: TestInstance): Promise<RouteAnswer[]> {
  const items: RouteAnswer[] = [];
  let cursor: string | null = null;
  do {
    const page: ApiAnswer<{ items: RouteAnswer[]; next_cursor: string | null }> =
      await instance.admin.get(`/routes?limit=4${cursor ? `&cursor=${cursor}` : ""}`);
    expect(page.status).toBe(200);
    items.push(...page.body.items);
    cursor = page.body.next_cursor;
  } while (cursor);
  return items;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : 1);

/** Registers workers and creates, patches and deletes routes, remembering every answer. */
async function write(instance: TestInstance): Promise<Written> {
  const m = instance.manager;
  const portRegistration = portWorker({ port_range: [40000, 40009], labels: { zone: "a" } });
  const wildRegistration = wildcardWorker({ tls: true, protocols: ["http", "grpc"] });
  const pw = await registerWorker(instance.registration, portRegistration);
  const ww = await registerWorker(instance.registration, wildRegistration);
  const routes = new Map<string, RouteAnswer>();
  const deleted: string[] = [];
  let version = 0;
  const keep = (answer: ApiAnswer<RouteAnswer>, status: number) => {
    expect(answer.status, JSON.stringify(answer.body)).toBe(status);
    expect(versionOf(answer)).toBe(version + 1);
    version = versionOf(answer);
    routes.set(answer.body.id, answer.body);
    return answer.body;
  };

  const first = keep(
    await m.post<RouteAnswer>("/routes", routeBody({ worker_id: pw.worker.id })),
    201,
  );
  const pinned = keep(
    await m.post<RouteAnswer>(
      "/routes",
      routeBody({
        worker_id: pw.worker.id,
        port: 40007,
        protocol: "tcp",
        labels: { team: "ml" },
        allowed_client_ips: ["10.0.0.0/8", "192.168.1.7"],
        expires_at: "2099-01-01T00:00:00.000Z",
      }),
    ),
    201,
  );
  const inference = keep(
    await m.post<RouteAnswer>(
      "/routes",
      routeBody({
        worker_id: ww.worker.id,
        subdomain: "llama-endpoint",
        mode: "inference",
        endpoint_id: "ep-1",
        upstreams: [
          { host: "10.0.1.1", port: 9000, weight: 2 },
          { host: "10.0.1.2", port: 9000, weight: 1 },
        ],
        health_check: { path: "/health", interval_s: 5, max_wait_s: 60 },
      }),
    ),
    201,
  );

  const batch = await m.post<{ version: number; items: RouteAnswer[] }>("/routes/batch", {
    routes: [
      routeBody({ session_id: "sess-finished" }),
      routeBody({ session_id: "sess-finished", worker_id: ww.worker.id }),
      routeBody({ session_id: "sess-kept", user_id: "u-1", project_id: "p-1" }),
      routeBody({ worker_id: pw.worker.id }),
    ],
  });
  expect(batch.status).toBe(201);
  expect(batch.body.version).toBe(version + 1);
  version = batch.body.version;
  for (const r of batch.body.items) routes.set(r.id, r);

  keep(
    await m.patch<RouteAnswer>(
      `/routes/${pinned.id}`,
      { open_to_public: true, labels: { team: "ml", tier: "gold" } },
      { "if-match": `"${pinned.version}"` },
    ),
    200,
  );
  keep(
    await m.patch<RouteAnswer>(`/routes/${inference.id}`, {
      upstreams: [{ host: "10.0.1.3", port: 9001, weight: 1 }],
      health_check: null,
    }),
    200,
  );

  const removed = await m.delete(`/routes/${first.id}`);
  expect(removed.status).toBe(204);
  expect(versionOf(removed)).toBe(version + 1);
  version = versionOf(removed);
  routes.delete(first.id);
  deleted.push(first.id);

  const session = await m.delete<{ deleted: number; version: number }>(
    "/routes?session_id=sess-finished",
  );
  expect(session.body).toEqual({ deleted: 2, version: version + 1 });
  version = session.body.version;
  for (const r of batch.body.items.filter((i) => i.session_id === "sess-finished")) {
    routes.delete(r.id);
    deleted.push(r.id);
  }

  const listed = await listAll(instance);
  expect(listed).toEqual([...routes.values()].sort(byId));
  const workers = await instance.admin.get<{ items: WorkerView[] }>("/workers");
  expect(workers.body.items.map((w) => w.route_count).sort()).toEqual([1, 3]);
  return {
    portRegistration,
    wildRegistration,
    portWorker: pw,
    routes,
    deleted,
    version,
    workers: workers.body.items,
    freedPort: first.port!,
  };
}

/** Reads everything back from a new instance and makes the next change. */
async function verify(instance: TestInstance, written: Written): Promise<void> {
  expect(await listAll(instance)).toEqual([...written.routes.values()].sort(byId));
  for (const route of written.routes.values()) {
    const read = await instance.manager.get<RouteAnswer>(`/routes/${route.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(route);
    expect(read.headers.get("etag")).toBe(`"${route.version}"`);
  }
  for (const id of written.deleted) {
    expect((await instance.admin.get(`/routes/${id}`)).status).toBe(404);
  }
  const filtered = await instance.admin.get<{ items: RouteAnswer[] }>(
    "/routes?session_id=sess-kept",
  );
  expect(filtered.body.items.map((r) => r.user_id)).toEqual(["u-1"]);

  const workers = await instance.admin.get<{ items: WorkerView[] }>("/workers");
  expect(workers.body.items).toEqual(written.workers);
  for (const w of written.workers) {
    expect((await instance.admin.get(`/workers/${w.id}`)).body).toEqual(w);
  }

  // A restarted worker registering again keeps its identity and gets its table at the head.
  const again = await instance.registration.post<WorkerAnswer>(
    "/workers/register",
    written.portRegistration,
    { "x-worker-token": written.portWorker.token },
  );
  expect(again.status).toBe(200);
  expect(again.body.worker.id).toBe(written.portWorker.worker.id);
  expect(again.body.version).toBe(written.version);
  expect([...again.body.routes].sort(byId)).toEqual(
    [...written.routes.values()].filter((r) => r.worker_id === again.body.worker.id).sort(byId),
  );

  // The next change takes the next version, and the port freed before the restart is free again.
  const next = await instance.manager.post<RouteAnswer>(
    "/routes",
    routeBody({ worker_id: written.portWorker.worker.id }),
  );
  expect(next.status).toBe(201);
  expect(versionOf(next)).toBe(written.version + 1);
  expect(next.body.version).toBe(written.version + 1);
  expect(next.body.port).toBe(written.freedPort);
  const taken = await instance.manager.post(
    "/routes",
    routeBody({ worker_id: written.portWorker.worker.id, port: 40007 }),
  );
  expect(taken.status).toBe(409);

  const knex = instance.coordinator.database.knex;
  const changes = (await knex("changes").orderBy("version").select("version")) as Array<{
    version: number | string;
  }>;
  expect(changes.map((c) => Number(c.version))).toEqual(
    Array.from({ length: written.version + 1 }, (_, i) => i + 1),
  );
}

describe("a restart", () => {
  it(`keeps everything written, on the test database (${onPostgres() ? "PostgreSQL, a new pool" : "embedded, the same PGlite"})`, async () => {
    let testDb: TestDatabase | undefined;
    const instances: TestInstance[] = [];
    try {
      testDb = await createTestDatabase();
      const firstDb = await testDb.open();
      const first = await startInstance(firstDb, NO_LIVENESS);
      instances.push(first);
      const written = await write(first);
      await first.stop();
      // On PostgreSQL the first pool goes away entirely; the embedded test database has one handle.
      if (testDb.kind === "postgres") await firstDb.close();

      const second = await startInstance(await testDb.open(), NO_LIVENESS);
      instances.push(second);
      expect(second.coordinator.instanceId).not.toBe(first.coordinator.instanceId);
      await verify(second, written);
    } finally {
      for (const instance of instances) await instance.stop();
      await testDb?.drop();
    }
  });

  it("keeps everything written in an embedded DATA_DIR that is closed and opened again", async () => {
    const dataDir = tempDir("appproxy-restart-");
    const opened: Database[] = [];
    const instances: TestInstance[] = [];
    try {
      const firstDb = await openDatabase({ dataDir });
      opened.push(firstDb);
      // One process at a time: a second opening (here, or another process's) is refused.
      await expect(openDatabase({ dataDir })).rejects.toThrow(
        new RegExp(`in use by process ${process.pid}\\b`),
      );
      const first = await startInstance(firstDb, NO_LIVENESS);
      instances.push(first);
      const written = await write(first);
      await first.stop();
      await firstDb.close();
      expect(firstDb.pglite?.closed).toBe(true);

      const secondDb = await openDatabase({ dataDir });
      opened.push(secondDb);
      expect(secondDb.kind).toBe("embedded");
      const second = await startInstance(secondDb, NO_LIVENESS);
      instances.push(second);
      await verify(second, written);
    } finally {
      for (const instance of instances) await instance.stop();
      for (const db of opened) await db.close();
    }
  }, 60_000);
});

describe("generated secrets", () => {
  const SETTINGS = [
    "MANAGER_TOKENS",
    "REGISTRATION_TOKENS",
    "ADMIN_TOKENS",
    "TOKEN_SECRET",
    "ACCESS_TOKEN_KEYS",
  ];

  it("are written once to DATA_DIR/secrets.json with mode 0600 and reused after", () => {
    const dataDir = path.join(tempDir("appproxy-secrets-"), "data");
    const config = loadConfig({ DATA_DIR: dataDir });
    const file = path.join(dataDir, "secrets.json");
    expect(existsSync(file)).toBe(false);

    const first = resolveSecrets(config);
    expect(first.generated.map((g) => g.setting).sort()).toEqual([...SETTINGS].sort());
    expect(existsSync(file)).toBe(true);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const { secrets } = first;
    const values = [
      secrets.managerTokens[0],
      secrets.registrationTokens[0],
      secrets.adminTokens[0],
      secrets.tokenSecret,
      secrets.accessTokenKeys[0],
    ];
    expect(new Set(values).size).toBe(5);
    for (const value of values) expect(value!.length).toBeGreaterThanOrEqual(32);
    expect(first.generated.map((g) => g.value).sort()).toEqual([...values].sort());
    const stored = readFileSync(file, "utf8");
    for (const value of values) expect(stored).toContain(value);

    const second = resolveSecrets(config);
    expect(second.generated).toEqual([]);
    expect(second.secrets).toEqual(first.secrets);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it("leave configured tokens alone and generate only the rest", () => {
    const dataDir = tempDir("appproxy-secrets-");
    const managerTokens = ["configured-manager-0123456789", "rotated-manager-0123456789"];
    const config = loadConfig({ DATA_DIR: dataDir, MANAGER_TOKENS: managerTokens.join(",") });
    const first = resolveSecrets(config);
    expect(first.secrets.managerTokens).toEqual(managerTokens);
    expect(first.generated.map((g) => g.setting).sort()).toEqual(
      SETTINGS.filter((s) => s !== "MANAGER_TOKENS").sort(),
    );
    expect(readFileSync(path.join(dataDir, "secrets.json"), "utf8")).not.toContain(
      "configured-manager",
    );
    const second = resolveSecrets(config);
    expect(second.generated).toEqual([]);
    expect(second.secrets).toEqual(first.secrets);
  });

  it("take configured access-token keys, the first to sign, and store none of them", () => {
    const dataDir = tempDir("appproxy-secrets-");
    const keys = [TOKENS.accessKey, "Jq3x0Bk9l7m2PmV6yH5aT1cR8uW4eZ0nD3sF6gJ9kLw"];
    const { secrets, generated } = resolveSecrets(
      loadConfig({ DATA_DIR: dataDir, ACCESS_TOKEN_KEYS: keys.join(",") }),
    );
    expect(secrets.accessTokenKeys).toEqual(keys);
    expect(generated.map((g) => g.setting)).not.toContain("ACCESS_TOKEN_KEYS");
    const stored = readFileSync(path.join(dataDir, "secrets.json"), "utf8");
    for (const key of keys) expect(stored).not.toContain(key);
    expect(() => loadConfig({ ACCESS_TOKEN_KEYS: "short" })).toThrow(/ACCESS_TOKEN_KEYS/);
  });

  it("refuse a damaged secrets.json in one line that names the file and quotes none of it", () => {
    const dataDir = tempDir("appproxy-secrets-");
    const config = loadConfig({ DATA_DIR: dataDir });
    const { secrets } = resolveSecrets(config);
    const file = path.join(dataDir, "secrets.json");
    const whole = readFileSync(file, "utf8");
    // A start-up killed while writing, before writes became whole-or-nothing.
    for (const damaged of [whole.slice(0, whole.length / 2), "[]", '{"token_secret": 7}']) {
      writeFileSync(file, damaged);
      let refused: unknown;
      try {
        resolveSecrets(config);
      } catch (error) {
        refused = error;
      }
      expect(refused, damaged).toBeInstanceOf(ConfigError);
      const message = (refused as Error).message;
      expect(message).toContain(file);
      expect(message).not.toContain(secrets.tokenSecret);
      expect(message).not.toContain(secrets.managerTokens[0]);
    }
    // The coordinator itself says just that, and exits 1 before it opens anything.
    writeFileSync(file, whole.slice(0, whole.length / 2));
    const run = spawnSync(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: path.resolve(import.meta.dirname, "../.."),
      env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: "", PORT: "0" },
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(run.status).toBe(1);
    expect(run.stderr.trim().split("\n")).toHaveLength(1);
    expect(run.stderr).toContain("secrets.json is not valid JSON");
    for (const value of [secrets.tokenSecret, ...secrets.managerTokens]) {
      expect(run.stdout + run.stderr).not.toContain(value);
    }
    // Nothing was left half-written beside it.
    expect(readdirSync(dataDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
