import { randomUUID } from "node:crypto";
import type { AddressInfo } from "node:net";
import { AccessKeyRing } from "./access/keys.js";
import { createApp } from "./app.js";
import { startBackendAiListener, type BackendAiListener } from "./backendai/listener.js";
import { answerClientError } from "./http/client-error.js";
import { createHttpServer } from "./http/server.js";
import type { Secrets } from "./auth/secrets.js";
import { TokenRegistry } from "./auth/tokens.js";
import type { Config } from "./config.js";
import { CHANNELS, parseNotice } from "./db/channels.js";
import { migrateToLatest, openDatabase, type Database } from "./db/database.js";
import { NotificationListener } from "./db/notifications.js";
import { ActivityRecorder } from "./liveness/activity.js";
import { Reaper } from "./liveness/reaper.js";
import { ReaperScheduler } from "./liveness/scheduler.js";
import type { Logger } from "./logger.js";
import { Metrics } from "./ops/metrics.js";
import { opsRouter } from "./ops/ops-router.js";
import { Hub } from "./sync/hub.js";
import { PresenceWriter } from "./sync/presence.js";
import { closeCodeLabel } from "./sync/close-codes.js";
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
  readonly accessKeys: AccessKeyRing;
  /** The Backend.AI-compatible listener's base URL, where BACKENDAI_PORT is set. */
  readonly backendaiUrl: string | undefined;
  readonly hub: Hub;
  readonly watch: PropagationWatch;
  readonly reaper: ReaperScheduler;
  /** Stops in order: not ready, jobs, streams, HTTP (finishing requests), database. Idempotent. */
  stop(): Promise<void>;
}

const SHUTDOWN_GRACE_MS = 10_000;

/** The composition root's body: opens the database, migrates, builds the app and listens. */
export async function startCoordinator(options: CoordinatorOptions): Promise<Coordinator> {
  const { config, secrets, logger } = options;
  const instanceId = randomUUID();
  const startedAt = new Date();
  const accessKeys = await AccessKeyRing.fromSeeds(secrets.accessTokenKeys);
  const ownsDatabase = !options.database;
  const database =
    options.database ??
    (await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, logger }));
  try {
    await migrateToLatest(database.knex);
  } catch (error) {
    if (ownsDatabase) await database.close();
    throw error;
  }
  const { knex } = database;

  const tokens = new TokenRegistry(
    {
      manager: secrets.managerTokens,
      registration: secrets.registrationTokens,
      admin: secrets.adminTokens,
    },
    secrets.tokenSecret,
  );
  const metrics = new Metrics(knex, config.eventLoopResolutionMs);
  const committer = new Committer(knex, instanceId, metrics.stages);
  const watch = new PropagationWatch(knex, (error) =>
    logger.warn("wait=applied could not read acknowledgements; the wait goes on", {
      error: String(error),
    }),
  );
  const presence = new PresenceWriter(knex, instanceId, logger);
  const activity = new ActivityRecorder(knex, logger);
  const hub = new Hub(
    knex,
    instanceId,
    config.heartbeatIntervalS,
    accessKeys.jwks,
    presence,
    watch,
    logger,
    {
      frameSent: (type) => metrics.streamFrames.inc({ direction: "out", type }),
      acknowledged: (_workerId, _version, sinceCommitS) => {
        if (sinceCommitS !== undefined) metrics.propagation.observe(sinceCommitS);
      },
      stage: (stage, seconds) => metrics.stages.observe(stage, seconds),
      activity: (workerId, routes, notOwn) => {
        const badTime = activity.report(workerId, routes);
        if (notOwn > 0) metrics.activityDropped.inc({ reason: "not_own" }, notOwn);
        if (badTime > 0) metrics.activityDropped.inc({ reason: "bad_time" }, badTime);
      },
    },
  );
  await hub.start();
  watch.followStreams((workerId) => hub.streaming(workerId));
  committer.onCommit((first, head, entries) => hub.committedLocally(first, head, entries));
  committer.onTransaction((requests, seconds) => {
    metrics.writeSeconds.observe(seconds);
    metrics.writeRequests.observe(requests);
  });
  const listener = new NotificationListener(
    database,
    [...CHANNELS],
    (channel, payload) => {
      const notice = parseNotice(channel, payload);
      switch (notice?.kind) {
        case "routing":
          // A commit of this instance reached the hub through onCommit already (were its answer
          // lost with the connection, the hub's timer reads the head anyway).
          if (notice.origin !== instanceId) hub.wake(notice.head);
          break;
        case "worker_removed":
          hub.removed(notice.workerId);
          break;
        case "worker_readdressed":
          hub.readdressed(notice.workerId);
          break;
        case "stream_taken":
          hub.replacedElsewhere(notice.workerId, notice.instanceId, notice.streamSeq);
          break;
      }
    },
    () => {
      hub.wake();
      void hub.afterMissedNotices();
    },
    logger,
  );
  await listener.start();

  const reaper = new ReaperScheduler(
    new Reaper(
      knex,
      database.kind,
      committer,
      {
        workerLostAfterS: config.workerLostAfterS,
        workerForgetAfterS: config.workerForgetAfterS,
        heartbeatIntervalS: config.heartbeatIntervalS,
        changelogRetention: config.changelogRetention,
        startedAt,
      },
      logger,
    ),
    config.reaperCron,
    logger,
    (outcome, run) => {
      metrics.reaperRuns.inc({ outcome });
      if (run?.failedOver) metrics.failovers.inc(run.failedOver);
    },
  );

  let accepting = true;
  const app = createApp({
    knex,
    committer,
    tokens,
    accessKeys,
    watch,
    logger,
    heartbeatIntervalS: config.heartbeatIntervalS,
    accepting: () => accepting,
    extraRouters: [
      opsRouter({
        knex,
        tokens,
        metrics,
        instanceId,
        startedAt,
        database: database.kind,
        publicStatus: config.publicStatus,
      }),
    ],
    knownVersion: () => hub.knownHead(),
    observeRequest: (method, route, status, seconds) =>
      metrics.httpDuration.observe({ method, route, status: String(status) }, seconds),
  });
  const server = createHttpServer(app, {
    maxConnections: config.maxConnections,
    headersTimeoutMs: config.headersTimeoutS * 1000,
    requestTimeoutMs: config.requestTimeoutS * 1000,
    idleTimeoutMs: config.idleTimeoutS * 1000,
  });
  server.on("clientError", answerClientError(logger));
  const wss = attachStreamEndpoint({
    server,
    hub,
    tokens,
    knex,
    logger,
    accepting: () => accepting,
    events: {
      frameReceived: (type) => metrics.streamFrames.inc({ direction: "in", type }),
      disconnected: (code) => metrics.streamDisconnects.inc({ code: closeCodeLabel(code) }),
    },
  });
  const heartbeat = setInterval(() => {
    hub.heartbeat();
    void presence.flush();
  }, config.heartbeatIntervalS * 1000);
  heartbeat.unref();

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.port, config.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  let backendai: BackendAiListener | undefined;
  if (config.backendaiPort !== undefined) {
    if (!secrets.backendaiApiSecret) throw new Error("BACKENDAI_PORT is set without a secret");
    backendai = await startBackendAiListener({
      config,
      secret: secrets.backendaiApiSecret,
      knex,
      committer,
      accessKeys,
      watch,
      logger,
    });
  }
  reaper.start();
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
      await reaper.stop();
      await hub.stop();
      wss.close();
      await listener.stop();
      const backendaiClosed = backendai?.close(SHUTDOWN_GRACE_MS);
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      });
      await backendaiClosed;
      await activity.stop();
      if (ownsDatabase) await database.close();
      logger.info("coordinator stopped", { instance_id: instanceId });
    })());

  return {
    instanceId,
    url: `http://${host}:${port}`,
    port,
    database,
    tokens,
    accessKeys,
    backendaiUrl: backendai?.url,
    hub,
    watch,
    reaper,
    stop,
  };
}
