import type { Knex } from "knex";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RouteRow } from "../../src/routes/model.js";
import { Prepared, type Call } from "../../src/db/prepared.js";
import { ScriptSession } from "../../src/db/script.js";
import { routesByIdsStatement, updateRoutesStatement } from "../../src/routes/repository.js";
import {
  candidatesStatement,
  leastLoadedSet,
  WorkerTally,
} from "../../src/placement/repository.js";
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
  // And a fleet of thousands of workers (lost ones, copies of it).
  await h.database.knex.raw(
    `INSERT INTO workers
    SELECT (jsonb_populate_record(NULL::workers, to_jsonb(w) || jsonb_build_object(
      'id', gen_random_uuid(), 'name', w.name || '-' || i, 'status', 'lost'))).*
    FROM workers w, generate_series(1, 3000) i WHERE w.id = ?`,
    [wideWorker],
  );
  await h.database.knex.raw("ANALYZE routes");
  await h.database.knex.raw("ANALYZE workers");
});
afterAll(() => h?.close());

let probes = 0;

/** Ends the transaction of plansOf, undoing the statements it ran, with the plans it found. */
class PlansFound {
  constructor(readonly plans: string[]) {}
}

/**
 * The plans of `call` as PostgreSQL would run it: with its values bound (knex's queries),
 * and prepared, after as many executions as it takes PostgreSQL to settle between a generic
 * plan and one made for the values each time. The statements' effects are rolled back.
 */
async function plansOf(call: Call): Promise<string[]> {
  try {
    await h.database.knex.transaction(async (tx) => {
      const explain = async (text: string, bindings: Knex.Value[] = []) => {
        const result = (await tx.raw(`EXPLAIN ${text}`, bindings)) as
          { rows: Array<Record<string, string>> } | Array<{ rows: Array<Record<string, string>> }>;
        const rows = Array.isArray(result) ? result[0]!.rows : result.rows;
        return rows.map((r) => Object.values(r).join("")).join("\n");
      };
      const { sql, bindings } = call.bound();
      const inline = await explain(sql, bindings);
      const { types, text } = call.statement;
      const probe = new Prepared(`plan_probe_${++probes}`, types, text).with(...call.values);
      await tx.raw(probe.statement.definition);
      // PostgreSQL weighs a generic plan from the sixth execution on.
      for (let i = 0; i < 6; i++) await tx.raw(probe.execute());
      const settled = await explain(probe.execute());
      await tx.raw(`DEALLOCATE ${probe.statement.name}`);
      throw new PlansFound([inline, settled]);
    });
  } catch (found) {
    if (found instanceof PlansFound) return found.plans;
    throw found;
  }
  throw new Error("the transaction ended without its plans");
}

describe("statements of the write path, with their values and prepared", () => {
  it("a patch finds its routes by primary key, whatever the size of the table", async () => {
    const row = (await h.database.knex("routes").where({ id: routeId }).first()) as RouteRow;
    for (const plan of await plansOf(
      updateRoutesStatement([{ ...row, labels: { a: "b" } }], ["labels"]),
    )) {
      expect(plan).toMatch(/Index Scan (using|on) routes_pkey/);
      expect(plan).not.toMatch(/Seq Scan on routes/);
    }
  });

  it("a creation reads its routes by key and books its ports on its workers' rows by key", async () => {
    for (const plan of await plansOf(routesByIdsStatement([routeId]))) {
      expect(plan).toMatch(/Index Scan (using|on) routes_pkey/);
    }
    const tally = new WorkerTally();
    tally.add(wideWorker, 20001);
    tally.add(wideWorker, 20002);
    for (const plan of await plansOf(tally.statement())) {
      expect(plan).toMatch(/Index Scan using workers_pkey/);
      expect(plan).not.toMatch(/Seq Scan on workers/);
    }
  });
});

describe("placement's read of candidates", () => {
  beforeAll(async () => {
    // Thousands of eligible workers too, of all loads.
    await h.database.knex.raw(
      `INSERT INTO workers
      SELECT (jsonb_populate_record(NULL::workers, to_jsonb(w) || jsonb_build_object(
        'id', gen_random_uuid(), 'name', w.name || '-alive-' || i, 'status', 'alive',
        'route_count', i % 97))).*
      FROM workers w, generate_series(1, 3000) i WHERE w.id = ?`,
      [wideWorker],
    );
    await h.database.knex.raw("ANALYZE workers");
  });

  it("reads the least loaded eligible workers in index order, among thousands", async () => {
    for (const plan of await plansOf(candidatesStatement(leastLoadedSet([], 18), 1, []))) {
      expect(plan).toMatch(/Index Scan using workers_eligible_load_index/);
      expect(plan).not.toMatch(/Seq Scan on workers/);
      expect(plan).not.toMatch(/Sort/);
    }
  });
});

describe("prepared statements during a rolling upgrade", () => {
  it("keep working on a connection that prepared them after a migration adds a column", async () => {
    const session = await ScriptSession.open(h.database.knex);
    try {
      const [before] = await session.run([routesByIdsStatement([routeId])]);
      expect(before!.map((r) => r.id)).toEqual([routeId]);
      // A newer instance's migration (here on the same connection, PGlite having only one: the
      // plans are invalidated for every connection alike).
      await session.run(["ALTER TABLE routes ADD COLUMN upgrade_probe integer"]);
      try {
        const [after] = await session.run([routesByIdsStatement([routeId])]);
        expect(after!.map((r) => r.id)).toEqual([routeId]);
        expect(after![0]).not.toHaveProperty("upgrade_probe");
      } finally {
        await session.run(["ALTER TABLE routes DROP COLUMN upgrade_probe"]);
      }
    } finally {
      await session.close();
    }
  });
});
