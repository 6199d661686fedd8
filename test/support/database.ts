import { randomBytes } from "node:crypto";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import pg from "pg";
import { inject } from "vitest";
import { migrateToLatest, openDatabase, type Database } from "../../src/db/database.js";

/** A database of its own for one test file: a fresh PostgreSQL database, or a PGlite copy. */
export interface TestDatabase {
  readonly kind: "postgres" | "embedded";
  /** The URL of the PostgreSQL database (undefined on the embedded one). */
  readonly url: string | undefined;
  /** Opens a connection (a new pool on PostgreSQL; the one shared instance on PGlite). */
  open(): Promise<Database>;
  drop(): Promise<void>;
}

export const onPostgres = (): boolean => !!process.env.TEST_DATABASE_URL;

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (adminUrl) {
    const name = `appproxy_t_${randomBytes(6).toString("hex")}`;
    await adminQuery(`CREATE DATABASE ${name}`);
    const url = new URL(adminUrl);
    url.pathname = `/${name}`;
    const migrator = await openDatabase({ url: url.toString() });
    await migrateToLatest(migrator.knex);
    await migrator.close();
    const opened: Database[] = [];
    return {
      kind: "postgres",
      url: url.toString(),
      open: async () => {
        const db = await openDatabase({ url: url.toString() });
        opened.push(db);
        return db;
      },
      drop: async () => {
        await Promise.all(opened.map((d) => d.close()));
        await adminQuery(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      },
    };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "appproxy-test-"));
  const dataDir = path.join(dir, "pgdata");
  cpSync(inject("pgliteTemplate"), dataDir, { recursive: true });
  let shared: Promise<Database> | undefined;
  return {
    kind: "embedded",
    url: undefined,
    open: () => (shared ??= openDatabase({ dataDir: dir })),
    drop: async () => {
      if (shared) await (await shared).close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
