import type { Knex } from "knex";
import { migrationSource } from "./src/db/migration-source.js";

// For the knex CLI (run it with NODE_OPTIONS="--import tsx"). The coordinator itself migrates at
// start-up, and `npm run migrate` works on the embedded database too.
const config: Knex.Config = {
  client: "pg",
  connection: process.env.DATABASE_URL ?? "postgres://127.0.0.1:5432/test",
  migrations: { migrationSource },
};

export default config;
