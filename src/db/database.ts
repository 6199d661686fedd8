import path from "node:path";
import knexFactory, { type Knex } from "knex";
import ClientPgLite from "knex-pglite";
import pg from "pg";
import type { Logger } from "../logger.js";
import { DataDirInUse, lockDataDir } from "./data-dir-lock.js";
import { latestMigration, migrationSource } from "./migration-source.js";
import { PGliteThread } from "./pglite-thread.js";
import { keepDataDirPrivate } from "./private-files.js";

// bigint columns (versions) fit comfortably in a JS number; counts come back as numbers too.
pg.types.setTypeParser(pg.types.builtins.INT8, (v: string) => Number(v));

export type DatabaseKind = "postgres" | "embedded";

/** The open database: knex for queries, plus what LISTEN needs on each kind. */
export interface Database {
  readonly knex: Knex;
  readonly kind: DatabaseKind;
  readonly url: string | undefined;
  /** The embedded database, on its own thread (undefined on PostgreSQL). */
  readonly pglite: PGliteThread | undefined;
  close(): Promise<void>;
}

export interface OpenOptions {
  url?: string | undefined;
  /** Directory of the embedded database (its files are in `pgdata` there); ignored with `url`. */
  dataDir?: string | undefined;
  poolMax?: number;
  /** Where knex's own warnings go; JSON lines instead of its plain-text console output. */
  logger?: Logger;
}

function knexLog(logger: Logger | undefined): Knex.Config["log"] {
  if (!logger) return undefined;
  const line = (level: "warn" | "error" | "debug") => (message: unknown) =>
    logger[level]("database driver", {
      detail: message instanceof Error ? message.message : String(message),
    });
  return {
    warn: line("warn"),
    error: line("error"),
    deprecate: line("warn"),
    debug: line("debug"),
  };
}

export async function openDatabase(options: OpenOptions): Promise<Database> {
  if (options.url) {
    const knex = knexFactory({
      client: "pg",
      connection: { connectionString: options.url, application_name: "appproxy-coordinator" },
      pool: { min: 0, max: options.poolMax ?? 10 },
      acquireConnectionTimeout: 10_000,
      log: knexLog(options.logger),
    });
    let closed: Promise<void> | undefined;
    return {
      knex,
      kind: "postgres",
      url: options.url,
      pglite: undefined,
      close: () => (closed ??= knex.destroy()),
    };
  }
  const dataDir = path.resolve(options.dataDir ?? "./data");
  keepDataDirPrivate(dataDir);
  const release = lockDataDir(dataDir);
  let instance: PGliteThread;
  try {
    instance = await PGliteThread.open(path.join(dataDir, "pgdata"));
    keepDataDirPrivate(dataDir);
  } catch (error) {
    release();
    throw error;
  }
  const knex = knexFactory({
    client: ClientPgLite as unknown as typeof Knex.Client,
    dialect: "postgres",
    connection: () => ({ pglite: instance }) as object,
    log: knexLog(options.logger),
  });
  let closed: Promise<void> | undefined;
  return {
    knex,
    kind: "embedded",
    url: undefined,
    pglite: instance,
    close: () =>
      (closed ??= (async () => {
        try {
          await knex.destroy();
          if (!instance.closed) await instance.close();
          keepDataDirPrivate(dataDir);
        } finally {
          release();
        }
      })()),
  };
}

/**
 * For command-line tools (`npm run migrate`, `npm run seed`): the configured database, or one
 * plain line and exit code 1 when another process holds the embedded one.
 */
export async function openForTool(config: {
  databaseUrl: string | undefined;
  dataDir: string;
}): Promise<Database> {
  try {
    return await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  } catch (error) {
    if (!(error instanceof DataDirInUse)) throw error;
    console.error(error.message);
    process.exit(1);
  }
}

export async function migrateToLatest(knex: Knex): Promise<void> {
  await knex.migrate.latest({ migrationSource });
}

/** True when the database answers and every migration has been applied. */
export async function isReady(knex: Knex): Promise<boolean> {
  try {
    const rows = await knex("knex_migrations").where({ name: latestMigration }).count("* as n");
    return Number(rows[0]?.n ?? 0) > 0;
  } catch {
    return false;
  }
}
