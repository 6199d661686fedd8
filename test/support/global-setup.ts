import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import type { TestProject } from "vitest/node";
import { migrateToLatest, openDatabase } from "../../src/db/database.js";

declare module "vitest" {
  export interface ProvidedContext {
    pgliteTemplate: string;
  }
}

/**
 * Without TEST_DATABASE_URL the suite runs on the embedded database. Creating a PGlite database
 * takes seconds, so one migrated template is made here and every test file opens a copy.
 */
export default async function setup(project: TestProject) {
  if (process.env.TEST_DATABASE_URL) {
    project.provide("pgliteTemplate", "");
    return;
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "appproxy-template-"));
  const db = await openDatabase({ dataDir: dir });
  await migrateToLatest(db.knex);
  await db.close();
  project.provide("pgliteTemplate", path.join(dir, "pgdata"));
  return () => rmSync(dir, { recursive: true, force: true });
}
