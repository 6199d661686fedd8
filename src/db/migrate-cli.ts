import { ConfigError, loadConfig, type Config } from "../config.js";
import { migrateToLatest, openForTool } from "./database.js";

let config: Config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  for (const problem of error.problems) console.error(problem);
  process.exit(1);
}
const db = await openForTool(config);
try {
  await migrateToLatest(db.knex);
  console.log(`migrations applied (${db.kind} database)`);
} finally {
  await db.close();
}
