import { loadConfig } from "../config.js";
import { migrateToLatest, openDatabase } from "./database.js";

const config = loadConfig();
const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
try {
  await migrateToLatest(db.knex);
  console.log(`migrations applied (${db.kind} database)`);
} finally {
  await db.close();
}
