import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createApp } from "./app.js";
import { TokenRegistry } from "./auth/tokens.js";
import type { Secrets } from "./auth/secrets.js";
import type { Config } from "./config.js";
import { migrateToLatest, openDatabase, type Database } from "./db/database.js";
import type { Logger } from "./logger.js";
import { Committer } from "./versioning/committer.js";
import { PropagationWatch } from "./versioning/propagation.js";

export interface CoordinatorOptions {
  config: Config;
  secrets: Secrets;
  logger: Logger;
  /** An open database to use instead of the configured one; stop() leaves it open. */
  database?: Database;
}

export interface Coordinator {
  readonly instanceId: string;
  readonly url: string;
  readonly port: number;
  readonly database: Database;
  readonly tokens: TokenRegistry;
  /** Stops in order: not ready, jobs, streams, HTTP (finishing requests), database. Idempotent. */
  stop(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 10_000;

/** The composition root's body: opens the database, migrates, builds the app and listens. */
export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const { config, secrets, logger } = options;
  const instanceId = randomUUID();
  const ownsDatabase = !options.database;
  const database =
    options.database ?? (await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir }));
  try {
    await migrateToLatest(database.knex);
  } catch (error) {
    if (ownsDatabase) await database.close();
    throw error;
  }

  const tokens = new TokenRegistry(
    {
      manager: secrets.managerTokens,
      registration: secrets.registrationTokens,
      admin: secrets.adminTokens,
    },
    secrets.tokenSecret,
  );
  const committer = new Committer(database.knex);
  const watch = new PropagationWatch(database.knex);
  let accepting = true;
  const app = createApp({
    knex: database.knex,
    committer,
    tokens,
    watch,
    logger,
    heartbeatIntervalS: config.heartbeatIntervalS,
    accepting: () => accepting,
  });
  const server = http.createServer(app);
  server.headersTimeout = 30_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const host = config.host === "0.0.0.0" || config.host === "::" ? "127.0.0.1" : config.host;
  logger.info("coordinator listening", {
    instance_id: instanceId,
    port,
    host: config.host,
    database: database.kind,
  });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      accepting = false;
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      if (ownsDatabase) await database.close();
      logger.info("coordinator stopped", { instance_id: instanceId });
    })());

  return { instanceId, url: `http://${host}:${port}`, port, database, tokens, stop };
}
