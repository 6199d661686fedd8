import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { Prepared, runCall, type Statement } from "../../src/db/prepared.js";
import { json, literal, ScriptSession, sql, type Row } from "../../src/db/script.js";
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

async function script(statements: Statement[]) {
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

const ECHO = new Prepared(
  "script_probe_echo",
  ["text", "text[]", "jsonb", "int", "timestamptz"],
  "SELECT $1 AS s, $2 AS a, $3 AS j, $4 AS n, $5 AS t",
);
const COUNT_PROBES = new Prepared(
  "script_probe_count",
  ["text"],
  "SELECT count(*)::int AS n FROM script_probe WHERE v = $1",
);

describe("prepared statements in scripts", () => {
  it("take every value as a literal would, run as EXECUTE or written in", async () => {
    const when = new Date("2026-11-27T07:00:00.123Z");
    const calls = AWKWARD.map((text, i) =>
      ECHO.with(text, AWKWARD, json({ [text]: AWKWARD }), i - 3, when),
    );
    const executed = await script(calls);
    const inlined = await script(calls.map((c) => c.inline()));
    for (const rows of [executed, inlined]) {
      rows.forEach(([row], i) => {
        expect(row).toMatchObject({
          s: AWKWARD[i],
          a: AWKWARD,
          j: { [AWKWARD[i]!]: AWKWARD },
          n: i - 3,
        });
        expect((row!.t as Date).toISOString()).toBe(when.toISOString());
      });
    }
    expect(calls[0]!.execute()).toMatch(/^EXECUTE script_probe_echo\(/);
  });

  it("are prepared once per connection, and stay prepared after a rollback", async () => {
    const session = await ScriptSession.open(db.knex);
    try {
      await session.run(["BEGIN"]);
      // Prepared inside the transaction (its PREPARE goes first, in a round trip of its own),
      // which then fails and is rolled back.
      await expect(session.run([COUNT_PROBES.with("x"), "SELECT 1/0"])).rejects.toThrow(
        /division by zero/,
      );
      await session.run(["ROLLBACK"]);
      // Still prepared, and known to be: no second PREPARE, which would fail as a duplicate.
      const [counted, prepared] = await session.run([
        COUNT_PROBES.with("x"),
        "SELECT name FROM pg_prepared_statements WHERE name = 'script_probe_count'",
      ]);
      expect(counted).toEqual([{ n: 0 }]);
      expect(prepared!.map((r) => r.name)).toEqual(["script_probe_count"]);
    } finally {
      await session.close();
    }
  });

  it("recover when a connection's prepared statements are not what this process believes", async () => {
    const session = await ScriptSession.open(db.knex);
    try {
      await session.run([COUNT_PROBES.with("y")]);
      // Dropped behind the process's back (as DISCARD ALL would).
      await session.run(["DEALLOCATE ALL"]);
      await expect(session.run([COUNT_PROBES.with("y")])).rejects.toThrow(/does not exist/);
    } finally {
      await session.close();
    }
    // The next script prepares again: on a new connection (PostgreSQL), or after asking the
    // only one what it holds (PGlite).
    expect(await script([COUNT_PROBES.with("y"), ECHO.with("z", [], json(null), 0, null)])).toEqual(
      [[{ n: 0 }], [{ s: "z", a: [], j: null, n: 0, t: null }]],
    );
  });

  it("bind their values when knex runs them, a ? in a value included", async () => {
    const when = new Date("2026-11-27T07:00:00.123Z");
    for (const [i, text] of AWKWARD.entries()) {
      const { rows } = await runCall<{ rows: Row[] }>(
        db.knex,
        ECHO.with(text, [...AWKWARD, "?", "??"], json({ path: `/health?${text}` }), i, when),
      );
      expect(rows[0]).toMatchObject({
        s: text,
        a: [...AWKWARD, "?", "??"],
        j: { path: `/health?${text}` },
        n: i,
      });
    }
  });

  it("refuse the wrong number of values, and a second statement under one name", () => {
    expect(() => COUNT_PROBES.with()).toThrow(/takes 1 values, not 0/);
    expect(() => new Prepared("script_probe_count", ["text"], "SELECT $1")).toThrow(
      /another statement/,
    );
    expect(() => new Prepared("bad name", [], "SELECT 1")).toThrow(/not a statement name/);
  });
});
