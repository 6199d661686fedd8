import { mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openDatabase, type Database } from "../../src/db/database.js";

/** Every path under `dir` (itself included) whose mode lets group or others in. */
function openToOthers(dir: string): string[] {
  const found: string[] = [];
  const walk = (at: string): void => {
    if ((statSync(at).mode & 0o077) !== 0) found.push(at);
    if (!statSync(at).isDirectory()) return;
    for (const name of readdirSync(at)) walk(path.join(at, name));
  };
  walk(dir);
  return found;
}

describe("the embedded database's DATA_DIR", () => {
  const root = mkdtempSync(path.join(os.tmpdir(), "appproxy-private-"));
  const dataDir = path.join(root, "data");
  let db: Database;

  beforeAll(async () => {
    process.umask(0o022);
    // A folder left by an older version, with a file anyone could read.
    mkdirSync(dataDir, { mode: 0o755 });
    writeFileSync(path.join(dataDir, "left-over"), "x", { mode: 0o644 });
    db = await openDatabase({ dataDir });
    await db.knex.raw("CREATE TABLE probe (id int)");
    await db.knex.raw("INSERT INTO probe VALUES (1)");
  });

  afterAll(async () => {
    await db?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it("is 0700 while the database is open, whatever the umask was", () => {
    expect(readdirSync(path.join(dataDir, "pgdata")).length).toBeGreaterThan(5);
    expect(statSync(dataDir).mode & 0o777).toBe(0o700);
    expect(statSync(path.join(dataDir, "left-over")).mode & 0o777).toBe(0o600);
  });

  it("holds only 0700 folders and 0600 files once the database is closed", async () => {
    await db.close();
    expect(openToOthers(dataDir)).toEqual([]);
  });
});
