import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Channel, parseRoutingPayload } from "../../src/db/channels.js";
import type { Database } from "../../src/db/database.js";
import { NotificationListener } from "../../src/db/notifications.js";
import { sql, type Row } from "../../src/db/script.js";
import type { PlanContext, RunResult, Scripted } from "../../src/versioning/change.js";
import { Committer } from "../../src/versioning/committer.js";
import { createLogger } from "../../src/logger.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { waitFor } from "../support/harness.js";

let testDb: TestDatabase;
let db: Database;
let committer: Committer;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await testDb.open();
  await db.knex.raw("CREATE TABLE probe_notes (id text PRIMARY KEY, note text NOT NULL)");
  committer = new Committer(db.knex);
});
afterAll(async () => {
  await testDb.drop();
});

const WORKER = "00000000-0000-4000-8000-000000000001";
const uuidOf = (id: string) => `00000000-0000-4000-8000-${id.padStart(12, "0")}`;

/** A scripted change of a test kind: writes a note; `fail` makes its write fail in PostgreSQL. */
function note(id: string, text: string, fail = false, needs?: string[]): Scripted<Note, string> {
  return {
    key: "probe.note",
    input: { id, text, fail },
    creates: [id],
    ...(needs ? { needs } : {}),
    start: (inputs) => {
      const versions: number[] = [];
      return {
        reads: () => [
          sql`SELECT id FROM probe_notes WHERE id = ANY(${inputs.map((i) => i.id)}::text[])`,
        ],
        plan: (_rows: Row[][], ctx: PlanContext) => {
          for (const input of inputs) {
            versions.push(ctx.takeVersion());
            ctx.record(versions.at(-1)!, {
              workerId: WORKER,
              routeId: uuidOf(input.id),
              op: "delete",
            });
          }
        },
        writes: () =>
          inputs.map((i) =>
            i.fail ? "SELECT 1/0" : sql`INSERT INTO probe_notes VALUES (${i.id}, ${i.text})`,
          ),
        results: (): Array<RunResult<string>> =>
          inputs.map((i, n) => ({ ok: true, value: i.text, version: versions[n]! })),
      };
    },
  };
}
interface Note {
  id: string;
  text: string;
  fail: boolean;
}

async function notes(): Promise<string[]> {
  const rows = (await db.knex("probe_notes").orderBy("id").select("id")) as Array<{ id: string }>;
  return rows.map((r) => r.id);
}

describe("the committer's scripted changes", () => {
  it("commit changes that arrive together in one group, each with its own version", async () => {
    const before = Number((await db.knex("routing_state").first("version")).version);
    const answers = await Promise.all(
      ["a1", "a2", "a3", "a4"].map((id) => committer.submitScripted("probe", note(id, id))),
    );
    expect(answers.map((a) => a.version)).toEqual([before + 1, before + 2, before + 3, before + 4]);
    expect(await notes()).toEqual(["a1", "a2", "a3", "a4"]);
    const log = (await db
      .knex("changes")
      .where("version", ">", before)
      .orderBy("version")) as Array<{ kind: string; committed_at: Date }>;
    expect(log.map((c) => c.kind)).toEqual(["probe", "probe", "probe", "probe"]);
    // One transaction: every change of a group carries the moment its lock was taken.
    expect(new Set(log.map((c) => c.committed_at.getTime())).size).toBe(1);
  });

  it("fail only the change whose write fails, and commit the others of its group", async () => {
    const settled = await Promise.allSettled([
      committer.submitScripted("probe", note("b1", "b1")),
      committer.submitScripted("probe", note("b2", "b2", true)),
      committer.submitScripted("probe", note("b3", "b3")),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect(await notes()).toEqual(["a1", "a2", "a3", "a4", "b1", "b3"]);
    const versions = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value.version] : []));
    expect(versions[1]).toBe(versions[0]! + 1);
  });

  it("hold a change that needs what another of its group creates for the next group", async () => {
    // Submitted first, the change that needs c1 would otherwise take the earlier version.
    const [needing, created] = await Promise.all([
      committer.submitScripted("probe", note("c2", "c2", false, ["c1"])),
      committer.submitScripted("probe", note("c1", "c1")),
    ]);
    expect(needing.version).toBeGreaterThan(created.version);
    expect(await notes()).toContain("c2");
  });

  it("read more while a run asks for it, in the same transaction, and plan on every row", async () => {
    const seen: unknown[][] = [];
    const asked: string[] = [];
    const run: Scripted<Note, string> = {
      key: "probe.more",
      input: { id: "e1", text: "e1", fail: false },
      start: () => {
        let version = 0;
        return {
          reads: () => ["SELECT 1 AS n"],
          more: (rows: Row[][]) => {
            asked.push(rows.map((r) => r[0]!.n).join(","));
            return rows.length < 3 ? [sql`SELECT ${rows.length + 1}::int AS n`] : [];
          },
          plan: (rows: Row[][], ctx: PlanContext) => {
            seen.push(rows.map((r) => r[0]!.n));
            version = ctx.takeVersion();
            ctx.record(version, { workerId: WORKER, routeId: uuidOf("e1"), op: "delete" });
          },
          writes: () => [sql`INSERT INTO probe_notes VALUES ('e1', 'e1')`],
          results: (): Array<RunResult<string>> => [{ ok: true, value: "e1", version }],
        };
      },
    };
    const { version, result } = await committer.submitScripted("probe", run);
    expect(result).toBe("e1");
    expect(asked).toEqual(["1", "1,2", "1,2,3"]);
    expect(seen).toEqual([[1, 2, 3]]);
    expect(version).toBeGreaterThan(0);
    expect(await notes()).toContain("e1");
  });

  it("name the committing instance in each commit's NOTIFY, and a bare head still reads", async () => {
    const heard: string[] = [];
    const listener = new NotificationListener(
      db,
      [Channel.Routing],
      (_channel, payload) => heard.push(payload),
      () => undefined,
      createLogger("error", true),
    );
    await listener.start();
    try {
      const named = new Committer(db.knex, "instance-a");
      const { version } = await named.submitScripted("probe", note("d1", "d1"));
      await waitFor(() => heard.length > 0, 5000, "the commit's notice");
      expect(heard).toEqual([`${version} instance-a`]);
      expect(parseRoutingPayload(heard[0]!)).toEqual({ head: version, origin: "instance-a" });
      expect(parseRoutingPayload("17")).toEqual({ head: 17, origin: undefined });
      expect(parseRoutingPayload("")).toEqual({ head: undefined, origin: undefined });
    } finally {
      await listener.stop();
    }
  });
});
