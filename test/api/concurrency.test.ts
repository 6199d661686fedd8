import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type ApiAnswer } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  wildcardWorker,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

/** No stream ever connects here: keep the reaper from declaring the workers lost mid-test. */
const NO_LIVENESS = { WORKER_LOST_AFTER_S: "3600" };

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

const statuses = (answers: ApiAnswer[]) =>
  answers.reduce<Record<number, number>>((acc, a) => {
    acc[a.status] = (acc[a.status] ?? 0) + 1;
    return acc;
  }, {});

/** Fires every request at once and waits for all answers. */
function all<T>(n: number, send: (i: number) => Promise<ApiAnswer<T>>): Promise<ApiAnswer<T>[]> {
  return Promise.all(Array.from({ length: n }, (_, i) => send(i)));
}

async function routeRows(h: Harness, workerId: string) {
  return (await h.database
    .knex("routes")
    .where({ worker_id: workerId })
    .select("id", "port", "subdomain", "version")) as Array<{
    id: string;
    port: number | null;
    subdomain: string | null;
    version: number;
  }>;
}

async function routeCount(h: Harness, workerId: string): Promise<number> {
  const res = await h.admin.get<{ route_count: number }>(`/workers/${workerId}`);
  expect(res.status).toBe(200);
  return res.body.route_count;
}

function expectProblem(answer: ApiAnswer, status: number) {
  expect(answer.status).toBe(status);
  expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  const body = answer.body as Problem;
  expect(body.status).toBe(status);
  expect(typeof body.detail).toBe("string");
  // A refusal says which version it saw, which it did not change.
  expect(answer.headers.get("x-routing-version")).toMatch(/^\d+$/);
}

describe("50 simultaneous creates pinned to one worker asking for the same port", () => {
  let h: Harness;
  let worker: WorkerAnswer;

  beforeAll(async () => {
    h = await startHarness(NO_LIVENESS);
    worker = await registerWorker(h.registration, portWorker({ port_range: [10200, 10299] }));
  });
  afterAll(() => h?.close());

  it("answer exactly one 201 and 49 × 409, and the database holds the one route", async () => {
    const answers = await all(50, () =>
      h.manager.post<RouteAnswer>(
        "/routes",
        routeBody({ worker_id: worker.worker.id, port: 10250 }),
      ),
    );
    expect(statuses(answers)).toEqual({ 201: 1, 409: 49 });

    const won = answers.find((a) => a.status === 201)!;
    expect(won.body.port).toBe(10250);
    expect(won.body.worker_id).toBe(worker.worker.id);
    expect(won.headers.get("x-routing-version")).toBe(String(won.body.version));
    for (const lost of answers.filter((a) => a.status === 409)) expectProblem(lost, 409);

    const rows = await routeRows(h, worker.worker.id);
    expect(rows).toEqual([{ id: won.body.id, port: 10250, subdomain: null, version: 1 }]);
    expect(await routeCount(h, worker.worker.id)).toBe(1);
    const listed = await h.admin.get<{ items: RouteAnswer[] }>("/routes?limit=1000");
    expect(listed.body.items).toEqual([won.body]);
  });

  it("answer 20 simultaneous retries of one id with one 201 and 19 × 200 of the same route", async () => {
    const body = routeBody({ id: randomUUID(), worker_id: worker.worker.id });
    const answers = await all(20, () => h.manager.post<RouteAnswer>("/routes", body));
    expect(statuses(answers)).toEqual({ 200: 19, 201: 1 });
    const won = answers.find((a) => a.status === 201)!;
    for (const a of answers) expect(a.body).toEqual(won.body);
    expect(await routeRows(h, worker.worker.id)).toHaveLength(2);
    expect(await routeCount(h, worker.worker.id)).toBe(2);
  });
});

describe("200 simultaneous unpinned creates on a single worker of 100 ports", () => {
  let h: Harness;
  let worker: WorkerAnswer;

  beforeAll(async () => {
    h = await startHarness(NO_LIVENESS);
    worker = await registerWorker(h.registration, portWorker({ port_range: [20000, 20099] }));
  });
  afterAll(() => h?.close());

  it("place exactly 100 on 100 distinct ports of the range and answer the rest 503 with Retry-After", async () => {
    const answers = await all(200, () => h.manager.post<RouteAnswer>("/routes", routeBody()));
    expect(statuses(answers)).toEqual({ 201: 100, 503: 100 });

    const created = answers.filter((a) => a.status === 201).map((a) => a.body);
    const ports = created.map((r) => r.port!);
    expect(new Set(ports).size).toBe(100);
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(20000);
      expect(port).toBeLessThanOrEqual(20099);
    }
    expect(new Set(created.map((r) => r.worker_id))).toEqual(new Set([worker.worker.id]));
    // Each successful create took its own version: 1…100, once each.
    expect(created.map((r) => r.version).sort((a, b) => a - b)).toEqual(
      Array.from({ length: 100 }, (_, i) => i + 1),
    );

    for (const refused of answers.filter((a) => a.status === 503)) {
      expectProblem(refused, 503);
      expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    }

    const rows = await routeRows(h, worker.worker.id);
    expect(rows).toHaveLength(100);
    expect(new Set(rows.map((r) => r.port))).toEqual(new Set(ports));
    expect(await routeCount(h, worker.worker.id)).toBe(100);
    const [total] = (await h.database.knex("routes").count("* as n")) as [{ n: number | string }];
    expect(Number(total.n)).toBe(100);

    // The worker is full: one more is refused, and a freed port is handed out again.
    const full = await h.manager.post("/routes", routeBody());
    expect(full.status).toBe(503);
    const freed = created[0]!;
    expect((await h.manager.delete(`/routes/${freed.id}`)).status).toBe(204);
    const again = await h.manager.post<RouteAnswer>("/routes", routeBody());
    expect(again.status).toBe(201);
    expect(again.body.port).toBe(freed.port);
    expect(await routeCount(h, worker.worker.id)).toBe(100);
  });
});

describe("30 simultaneous creates asking for one subdomain on a wildcard worker", () => {
  let h: Harness;
  let worker: WorkerAnswer;

  beforeAll(async () => {
    h = await startHarness(NO_LIVENESS);
    worker = await registerWorker(h.registration, wildcardWorker());
  });
  afterAll(() => h?.close());

  it("answer exactly one 201 and 29 × 409, and the database holds the one route", async () => {
    const answers = await all(30, (i) =>
      h.manager.post<RouteAnswer>(
        "/routes",
        routeBody({
          // Half pinned, half placed by the coordinator: both paths must refuse the duplicate.
          ...(i % 2 === 0 ? { worker_id: worker.worker.id } : {}),
          subdomain: "shared-notebook",
        }),
      ),
    );
    expect(statuses(answers)).toEqual({ 201: 1, 409: 29 });

    const won = answers.find((a) => a.status === 201)!;
    expect(won.body.subdomain).toBe("shared-notebook");
    expect(won.body.url).toBe(`http://shared-notebook.${String(worker.worker.wildcard_domain)}/`);
    for (const lost of answers.filter((a) => a.status === 409)) expectProblem(lost, 409);

    const rows = await routeRows(h, worker.worker.id);
    expect(rows).toEqual([
      { id: won.body.id, port: null, subdomain: "shared-notebook", version: 1 },
    ]);
    expect(await routeCount(h, worker.worker.id)).toBe(1);
  });
});

describe("a batch on one worker with routes asking for a port and routes taking the lowest", () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness(NO_LIVENESS);
  });
  afterAll(() => h?.close());

  // A few portless routes take ports read with the lock; many have their ports booked apart.
  // In both, a port asked for later in the batch is not handed out as a lowest free one.
  it.each([3, 40])(
    "of %i portless routes: each on its own port, the asked ones where asked",
    async (n) => {
      const worker = await registerWorker(
        h.registration,
        portWorker({ port_range: [20000, 20099] }),
      );
      const pinned = { worker_id: worker.worker.id };
      const asked = [20000, 20002];
      const routes = [
        ...Array.from({ length: n }, () => routeBody(pinned)),
        ...asked.map((port) => routeBody({ ...pinned, port })),
      ];
      const res = await h.manager.post<{ items: RouteAnswer[] }>("/routes/batch", { routes });
      expect(res.status).toBe(201);
      expect(res.body.items.slice(n).map((r) => r.port)).toEqual(asked);
      const rows = await routeRows(h, worker.worker.id);
      const ports = rows.map((r) => r.port!).sort((x, y) => x - y);
      // The lowest free ports, none twice and none skipped.
      expect(ports).toEqual(Array.from({ length: n + asked.length }, (_, i) => 20000 + i));
      // None of them is still among the worker's free ports.
      const free = await h.database.knex.raw<{ rows: Array<{ n: number | string }> }>(
        `SELECT count(*) AS n FROM workers w, unnest(?::int[]) AS p
          WHERE w.id = ? AND w.free_port_ranges @> p`,
        [ports, worker.worker.id],
      );
      expect(Number(free.rows[0]!.n)).toBe(0);
      expect(await routeCount(h, worker.worker.id)).toBe(n + asked.length);
    },
  );
});
