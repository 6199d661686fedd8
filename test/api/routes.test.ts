import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  wildcardWorker,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;
let h: Harness;
let w1: WorkerAnswer;

beforeAll(async () => {
  h = await startHarness();
  w1 = await registerWorker(h.registration, portWorker({ port_range: [10200, 10209] }));
});
afterAll(() => h?.close());

describe("POST /routes", () => {
  it("places, allocates the lowest free port and answers 201 with Location, ETag and version", async () => {
    const res = await h.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_id: w1.worker.id }),
    );
    expect(res.status).toBe(201);
    expect(res.body.port).toBe(10200);
    expect(res.body.url).toBe("http://127.0.0.1:10200/");
    expect(res.headers.get("location")).toBe(`/routes/${res.body.id}`);
    expect(res.headers.get("etag")).toBe(`"${res.body.version}"`);
    expect(res.headers.get("x-routing-version")).toBe(String(res.body.version));
    const again = await h.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_id: w1.worker.id }),
    );
    expect(again.body.port).toBe(10201);
    expect(again.body.version).toBe(res.body.version + 1);
  });

  it("answers a retry with the same id and body 200 with the stored route, another body 409", async () => {
    const body = routeBody({ id: "6c1e3a52-5e43-4c7e-9d0c-0a1b2c3d4e5f", worker_id: w1.worker.id });
    const first = await h.manager.post<RouteAnswer>("/routes", body);
    expect(first.status).toBe(201);
    const retry = await h.manager.post<RouteAnswer>("/routes", body);
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual(first.body);
    const other = await h.manager.post("/routes", { ...body, app: "ssh" });
    expect(other.status).toBe(409);
    expect(other.headers.get("content-type")).toMatch(/application\/problem\+json/);
  });

  it("answers 409 for a taken port and 422 for a port outside the range or an unknown worker", async () => {
    const taken = await h.manager.post(
      "/routes",
      routeBody({ worker_id: w1.worker.id, port: 10200 }),
    );
    expect(taken.status).toBe(409);
    const outside = await h.manager.post(
      "/routes",
      routeBody({ worker_id: w1.worker.id, port: 9000 }),
    );
    expect(outside.status).toBe(422);
    const unknown = await h.manager.post(
      "/routes",
      routeBody({ worker_id: "00000000-0000-4000-8000-000000000000" }),
    );
    expect(unknown.status).toBe(422);
  });

  it("answers 503 with Retry-After when no worker can take the route", async () => {
    const res = await h.manager.post("/routes", routeBody({ worker_selector: { gpu: "h100" } }));
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBeTruthy();
  });

  it("serves wildcard workers at a fresh subdomain, and refuses a taken subdomain with 409", async () => {
    const wc = await registerWorker(h.registration, wildcardWorker({ tls: true }));
    const res = await h.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ worker_id: wc.worker.id }),
    );
    expect(res.status).toBe(201);
    expect(res.body.subdomain).toMatch(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/);
    expect(res.body.url).toBe(`https://${res.body.subdomain}.${wc.worker.wildcard_domain}/`);
    const dup = await h.manager.post(
      "/routes",
      routeBody({ worker_id: wc.worker.id, subdomain: res.body.subdomain }),
    );
    expect(dup.status).toBe(409);
  });
});

describe("reading, patching and deleting routes", () => {
  it("lists with filters and cursor pagination", async () => {
    const session = `list-${Date.now()}`;
    for (let i = 0; i < 5; i++) {
      const r = await h.manager.post(
        "/routes",
        routeBody({
          session_id: session,
          labels: { i: String(i % 2), odd: i % 2 ? "yes" : "no", n: String(i) },
        }),
      );
      expect(r.status).toBe(201);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const q: string = `/routes?session_id=${session}&limit=2${cursor ? `&cursor=${cursor}` : ""}`;
      const page = await h.admin.get<{ items: RouteAnswer[]; next_cursor: string | null }>(q);
      expect(page.status).toBe(200);
      seen.push(...page.body.items.map((r) => r.id));
      cursor = page.body.next_cursor;
    } while (cursor);
    expect(new Set(seen).size).toBe(5);
    const labelled = await h.manager.get<{ items: RouteAnswer[] }>(
      `/routes?session_id=${session}&label=i:1`,
    );
    expect(labelled.body.items).toHaveLength(2);
    // Repeated label filters must all hold: narrowing, and two values of one key match nothing.
    const count = async (labels: string) =>
      (await h.manager.get<{ items: RouteAnswer[] }>(`/routes?session_id=${session}&${labels}`))
        .body.items.length;
    expect(await count("label=i:1&label=odd:yes")).toBe(2);
    expect(await count("label=i:1&label=n:3")).toBe(1);
    expect(await count("label=n:3&label=i:1")).toBe(1);
    expect(await count("label=i:0&label=i:1")).toBe(0);
    expect(await count("label=i:1&label=i:0")).toBe(0);
  });

  it("finds every storable label with label=key:value", async () => {
    const session = `labels-${Date.now()}`;
    const labels = {
      "a.b/c_d-e": "x:y:z",
      empty: "",
      spaced: "  with spaces and ünïcödé 😀 ",
      long: "v".repeat(255),
    };
    const created = await h.manager.post<RouteAnswer>(
      "/routes",
      routeBody({ session_id: session, labels }),
    );
    expect(created.status).toBe(201);
    for (const [key, value] of Object.entries(labels)) {
      const res = await h.admin.get<{ items: RouteAnswer[] }>(
        `/routes?session_id=${session}&label=${encodeURIComponent(`${key}:${value}`)}`,
      );
      expect(res.status, key).toBe(200);
      expect(
        res.body.items.map((r) => r.id),
        key,
      ).toEqual([created.body.id]);
    }
  });

  it("patches with If-Match and answers 412 on a stale ETag", async () => {
    const created = await h.manager.post<RouteAnswer>("/routes", routeBody());
    const stale = `"${created.body.version - 1}"`;
    const refused = await h.manager.patch(
      `/routes/${created.body.id}`,
      { open_to_public: true },
      { "if-match": stale },
    );
    expect(refused.status).toBe(412);
    const ok = await h.manager.patch<RouteAnswer>(
      `/routes/${created.body.id}`,
      { open_to_public: true, allowed_client_ips: ["10.0.0.0/8"] },
      { "if-match": `"${created.body.version}"` },
    );
    expect(ok.status).toBe(200);
    expect(ok.body.open_to_public).toBe(true);
    expect(ok.body.version).toBeGreaterThan(created.body.version);
    const read = await h.admin.get<RouteAnswer>(`/routes/${created.body.id}`);
    expect(read.body).toEqual(ok.body);
  });

  it("deletes one route (204, then 404) and a whole session in one version", async () => {
    const one = await h.manager.post<RouteAnswer>("/routes", routeBody());
    expect((await h.manager.delete(`/routes/${one.body.id}`)).status).toBe(204);
    expect((await h.manager.delete(`/routes/${one.body.id}`)).status).toBe(404);
    expect((await h.manager.get(`/routes/${one.body.id}`)).status).toBe(404);

    const session = `gone-${Date.now()}`;
    await h.manager.post("/routes/batch", {
      routes: [routeBody({ session_id: session }), routeBody({ session_id: session })],
    });
    const res = await h.manager.delete<{ deleted: number; version: number }>(
      `/routes?session_id=${session}`,
    );
    expect(res.status).toBe(200);
    expect(res.body.deleted).toBe(2);
    expect(res.headers.get("x-routing-version")).toBe(String(res.body.version));
    expect((await h.manager.delete("/routes")).status).toBe(400);
  });

  it("creates a batch all or nothing, in one version", async () => {
    const ok = await h.manager.post<{ version: number; items: RouteAnswer[] }>("/routes/batch", {
      routes: [routeBody(), routeBody({ app: "tensorboard" })],
    });
    expect(ok.status).toBe(201);
    expect(ok.body.items.map((r) => r.version)).toEqual([ok.body.version, ok.body.version]);
    expect(ok.body.items[1]!.app).toBe("tensorboard");
    const before = await h.admin.get<{ items: unknown[] }>("/routes?limit=1000");
    const bad = await h.manager.post("/routes/batch", {
      routes: [routeBody(), routeBody({ worker_id: w1.worker.id, port: 10200 })],
    });
    expect(bad.status).toBe(409);
    const after = await h.admin.get<{ items: unknown[] }>("/routes?limit=1000");
    expect(after.body.items.length).toBe(before.body.items.length);
  });
});
