import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { json, literal, ScriptSession, sql } from "../../src/db/script.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

let testDb: TestDatabase;
let db: Database;

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await testDb.open();
});
afterAll(async () => {
  await testDb.drop();
});

async function script(statements: string[]) {
  const session = await ScriptSession.open(db.knex);
  try {
    return await session.run(statements);
  } finally {
    await session.close();
  }
}

async function probeRows(): Promise<number> {
  const [[count]] = (await script(["SELECT count(*)::int AS n FROM script_probe"])) as [
    [{ n: number }],
  ];
  return count.n;
}

const AWKWARD = [
  "",
  "plain",
  "it's",
  "back\\slash",
  "\\'; DROP TABLE routes; --",
  'double "quotes", commas, {braces}',
  "ünïcödé ✓ 𝄞",
  "line\nbreak\ttab",
  "$1 ? :name",
];

describe("SQL literals written into scripts", () => {
  it("read back as the very strings, arrays and JSON documents they came from", async () => {
    const statements = [
      ...AWKWARD.map((s) => sql`SELECT ${s}::text AS v`),
      sql`SELECT ${AWKWARD}::text[] AS v`,
      sql`SELECT ${["a", null, "c"]}::text[] AS v`,
      sql`SELECT ${[1, -2, 3]}::int[] AS v`,
      sql`SELECT ${[]}::uuid[] AS v`,
      sql`SELECT ${json({ labels: Object.fromEntries(AWKWARD.map((s, i) => [`k${i}`, s])) })}::jsonb AS v`,
      sql`SELECT ${12.5}::float8 AS v, ${true} AS t, ${null}::text AS n`,
      sql`SELECT ${new Date("2026-11-27T07:00:00.123Z")}::timestamptz AS v`,
    ];
    const rows = await script(statements);
    const values = rows.map((r) => r[0]!.v);
    expect(values.slice(0, AWKWARD.length)).toEqual(AWKWARD);
    const rest = values.slice(AWKWARD.length);
    expect(rest[0]).toEqual(AWKWARD);
    expect(rest[1]).toEqual(["a", null, "c"]);
    expect(rest[2]).toEqual([1, -2, 3]);
    expect(rest[3]).toEqual([]);
    expect(rest[4]).toEqual({
      labels: Object.fromEntries(AWKWARD.map((s, i) => [`k${i}`, s])),
    });
    expect(rest[5]).toBe(12.5);
    expect(rows[rows.length - 2]![0]).toMatchObject({ t: true, n: null });
    expect((rest[6] as Date).toISOString()).toBe("2026-11-27T07:00:00.123Z");
  });

  it("refuse values that have no literal", () => {
    expect(() => literal(Number.NaN)).toThrow(/finite/);
    expect(() => literal(Infinity)).toThrow(/finite/);
    expect(() => literal(Symbol("x"))).toThrow(/no SQL literal/);
  });
});

describe("a script session", () => {
  it("keeps one transaction across scripts and hands back rows per statement", async () => {
    await script(["CREATE TABLE script_probe (v text)"]);
    const session = await ScriptSession.open(db.knex);
    try {
      const [begin, inserted] = await session.run([
        "BEGIN",
        sql`INSERT INTO script_probe VALUES (${"one"}), (${"two"}) RETURNING v`,
      ]);
      expect(begin).toEqual([]);
      expect(inserted!.map((r) => r.v)).toEqual(["one", "two"]);
      await session.run(["ROLLBACK"]);
    } finally {
      await session.close();
    }
    expect(await probeRows()).toBe(0);
  });

  it("stops at the first failing statement, leaving nothing of the transaction", async () => {
    const session = await ScriptSession.open(db.knex);
    try {
      await expect(
        session.run([
          "BEGIN",
          sql`INSERT INTO script_probe VALUES (${"kept?"})`,
          "SELECT 1/0",
          "COMMIT",
        ]),
      ).rejects.toThrow(/division by zero/);
      await session.run(["ROLLBACK"]);
    } finally {
      await session.close();
    }
    expect(await probeRows()).toBe(0);
  });
});
