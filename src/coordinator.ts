import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { createApp } from "./app.js";
import { TokenRegistry } from "./auth/tokens.js";
import type { Secrets } from "./auth/secrets.js";
import type { Config } from "./config.js";
import { migrateToLatest, openDatabase, type Database } from "./db/database.js";
import type { Logger } from "./logger.js";
import { Channel } from "./db/channels.js";
import { NotificationListener } from "./db/notifications.js";
import { Hub } from "./sync/hub.js";
import { PresenceWriter } from "./sync/presence.js";
import { attachStreamEndpoint } from "./sync/stream-endpoint.js";
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
  readonly hub: Hub;
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
  const presence = new PresenceWriter(database.knex, instanceId, logger);
  const hub = new Hub(
    database.knex,
    instanceId,
    config.heartbeatIntervalS,
    presence,
    watch,
    logger,
  );
  await hub.start();
  committer.onCommit((version) => hub.committedLocally(version));
  const listener = new NotificationListener(
    database,
    [Channel.Routing, Channel.Streams, Channel.WorkerRemoved],
    (channel, payload) => {
      if (channel === Channel.Routing) hub.wake();
      else if (channel === Channel.WorkerRemoved) hub.removed(payload);
      else if (channel === Channel.Streams) {
        const [workerId, otherInstance, at] = payload.split(" ");
        if (workerId && otherInstance) hub.replacedElsewhere(workerId, otherInstance, Number(at));
      }
    },
    () => hub.wake(),
    logger,
  );
  await listener.start();
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
  const wss = attachStreamEndpoint({
    server,
    hub,
    tokens,
    knex: database.knex,
    logger,
    accepting: () => accepting,
  });
  const heartbeat = setInterval(() => {
    hub.heartbeat();
    void presence.flush();
  }, config.heartbeatIntervalS * 1000);
  heartbeat.unref();
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
      clearInterval(heartbeat);
      await hub.stop();
      wss.close();
      await listener.stop();
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

  return { instanceId, url: `http://${host}:${port}`, port, database, tokens, hub, stop };
}
