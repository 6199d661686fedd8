import type { Knex } from "knex";
import { migrationSource } from "./src/db/migration-source.js";

// For the knex CLI: `npx knex --knexfile dist/knexfile.js migrate:list` after `npm run build`, or
// on the source with NODE_OPTIONS="--import tsx". The coordinator itself migrates at start-up,
// and `npm run migrate` works on the embedded database too. The migration source is a static
// list, so the names knex records are the same for the source and the compiled files.
const config: Knex.Config = {
  client: "pg",
  connection: process.env.DATABASE_URL ?? "postgres://127.0.0.1:5432/test",
  migrations: { migrationSource },
};

export default config;
