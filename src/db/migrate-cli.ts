import { ConfigError, loadConfig, type Config } from "../config.js";
import { migrateToLatest, openDatabase } from "./database.js";

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  for (const problem of error.problems) console.error(problem);
  process.exit(1);
}
const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
try {
  await migrateToLatest(db.knex);
  console.log(`migrations applied (${db.kind} database)`);
} finally {
  await db.close();
}
