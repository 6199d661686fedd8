import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteRow } from "../../src/routes/model.js";
import {
  routesByIdsStatement,
  takePortsStatement,
  updateRoutesStatement,
} from "../../src/routes/repository.js";
import { startHarness } from "../support/harness.js";
import { portWorker, registerWorker, routeBody, type RouteAnswer } from "../support/factories.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;
let h: Harness;
let routeId: string;
let wideWorker: string;

beforeAll(async () => {
  h = await startHarness();
  const worker = await registerWorker(h.registration, portWorker({ port_range: [10400, 10409] }));
  const res = await h.manager.post<RouteAnswer>(
    "/routes",
    routeBody({ worker_id: worker.worker.id }),
  );
  routeId = res.body.id;
  // A table of some thousands of routes (copies without a port), its statistics up to date.
  await h.database.knex.raw(`INSERT INTO routes
    SELECT (jsonb_populate_record(NULL::routes,
      to_jsonb(r) || jsonb_build_object('id', gen_random_uuid(), 'port', NULL))).*
    FROM routes r, generate_series(1, 3000)`);
  // And a worker with 20,000 free ports.
  wideWorker = (await registerWorker(h.registration, portWorker({ port_range: [20000, 39999] })))
    .worker.id;
  await h.database.knex.raw("ANALYZE routes");
  await h.database.knex.raw("ANALYZE free_ports");
});
afterAll(() => h?.close());

/** The plan of `statement` as PostgreSQL would run it, as text. */
async function planOf(statement: string): Promise<string> {
  const result = (await h.database.knex.raw(`EXPLAIN ${statement}`)) as
    { rows: Array<Record<string, string>> } | Array<{ rows: Array<Record<string, string>> }>;
  const rows = Array.isArray(result) ? result[0]!.rows : result.rows;
  return rows.map((r) => Object.values(r).join("")).join("\n");
}

describe("statements of the write path", () => {
  it("a patch finds its routes by primary key, whatever the size of the table", async () => {
    const row = (await h.database.knex("routes").where({ id: routeId }).first()) as RouteRow;
    const plan = await planOf(updateRoutesStatement([{ ...row, labels: { a: "b" } }], ["labels"]));
    expect(plan).toMatch(/Index Scan using routes_pkey on routes/);
    expect(plan).not.toMatch(/Seq Scan on routes/);
  });

  it("a creation reads its routes and books its ports by key", async () => {
    const read = await planOf(routesByIdsStatement([routeId]));
    expect(read).toMatch(/Index Scan using routes_pkey on routes/);
    const booking = await planOf(takePortsStatement([{ workerId: wideWorker, port: 20001 }]));
    expect(booking).toMatch(/Index Scan using free_ports_pkey on free_ports/);
    expect(booking).not.toMatch(/Seq Scan on free_ports/);
  });
});
