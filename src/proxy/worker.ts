import http from "node:http";
import type net from "node:net";
import proxyaddr from "proxy-addr";
import type { TableChange } from "../client/routing-table.js";
import { WorkerClient } from "../client/worker-client.js";
import { createLogger, type Logger } from "../logger.js";
import { AccessTokenVerifier } from "../client/access-token.js";
import { routeTokenVerifier, type RouteTokenVerifier } from "./access.js";
import { ActivityMeter } from "./activity-meter.js";
import { CachedTokenVerifier } from "./cached-verifier.js";
import type { DataPlane } from "./data-plane.js";
import { openFrontends } from "./frontends.js";
import { HealthProber } from "./health-prober.js";
import { WorkerMetrics } from "./metrics.js";
import { startOpsServer, type Readiness } from "./ops-server.js";
import {
  EMPTY_INDEX,
  applyChangeToIndex,
  subdomainOfHost,
  type IndexUpdate,
  type RouteIndex,
  type ServedRoute,
} from "./route-index.js";
import type { ServingScope } from "./route-validation.js";
import { registrationOf, type ProxySettings } from "./settings.js";
import { WorkerStateStore } from "./state-store.js";
import { TunnelRegistry } from "./tunnel-registry.js";

export interface ProxyWorkerOptions {
  logger?: Logger;
  /** Checks access tokens; by default the client library's verifier over the coordinator's keys. */
  verifier?: RouteTokenVerifier;
  /** Called when the coordinator refuses the registration for good (bad token, conflict). */
  onFatal?: (error: Error) => void;
  /** Client tuning for tests: reconnect delays, activity interval. */
  client?: { reconnectMinMs?: number; reconnectMaxMs?: number; activityIntervalMs?: number };
}

export interface ProxyWorkerStatus extends Readiness {
  workerId: string | undefined;
  routes: number;
}

export interface ProxyWorker {
  readonly addresses: { traffic: net.AddressInfo[]; ops: net.AddressInfo };
  status(): ProxyWorkerStatus;
  /** The index in force (read-only): which routes are served where. */
  index(): RouteIndex;
  /** Reads the TLS files again (SIGHUP). */
  reloadTls(): void;
  /**
   * SIGTERM's order: not ready, listeners closed, in-flight requests and open tunnels given up to
   * DRAIN_S, then the stream closed. Calling it again returns the same promise.
   */
  stop(): Promise<void>;
}

/** How long table changes are gathered before the worker's state is written to DATA_DIR. */
const SAVE_DELAY_MS = 200;
/** At most this many refused routes are named in one nack. */
const NACK_ROUTES_NAMED = 5;

/**
 * Starts a proxy worker: binds its listeners, serves the table kept in DATA_DIR at once if there
 * is one, registers (or resumes its stream) and from then on serves each table version before
 * acknowledging it. Resolves once the listeners are bound.
 */
export async function startProxyWorker(
  settings: ProxySettings,
  options: ProxyWorkerOptions = {},
): Promise<ProxyWorker> {
  const logger = options.logger ?? createLogger(settings.logLevel);
  const metrics = new WorkerMetrics();
  const tunnels = new TunnelRegistry();
  const prober = new HealthProber((upstream, healthy) =>
    logger.info("upstream health changed", {
      upstream: `${upstream.host}:${upstream.port}`,
      healthy,
    }),
  );
  const scope: ServingScope = {
    frontendMode: settings.frontendMode,
    portRange: settings.portRange,
    protocols: settings.protocols,
    modes: settings.modes,
  };
  const store = new WorkerStateStore(
    settings.dataDir,
    { name: settings.name, coordinatorUrl: settings.coordinatorUrl },
    (error) => logger.warn("worker state not kept", { error: error.message }),
  );
  const resume = await store.load();

  let index: RouteIndex = EMPTY_INDEX;
  let tableApplied = false;
  let coordinatorConnected = false;
  let stopping = false;
  // Traffic flows before the client exists (a kept table is served at once): reports wait for it.
  const link: { client?: WorkerClient } = {};
  const activity = new ActivityMeter((routeId, at) => link.client?.reportActivity(routeId, at));

  const install = (update: IndexUpdate, seconds: number): void => {
    index = update.index;
    tableApplied = true;
    for (const id of update.departed) {
      tunnels.drainRoute(id, settings.drainS * 1000);
      activity.forget(id);
    }
    prober.reconcile(index);
    metrics.applySeconds.observe(seconds);
    metrics.tableVersion.set(index.version);
    metrics.routesServed.set(index.byId.size);
    for (const { id, reason } of update.refused)
      logger.warn("route not served", { route: id, reason });
  };

  if (resume !== undefined) {
    const started = performance.now();
    const change: TableChange = {
      from: 0,
      to: resume.version,
      upserts: [...resume.routes],
      deletes: [],
    };
    install(applyChangeToIndex(index, change, scope), (performance.now() - started) / 1000);
    logger.info("serving the table kept in DATA_DIR", {
      version: resume.version,
      routes: resume.routes.length,
    });
  }

  // Keys kept in DATA_DIR check tokens until a coordinator sends newer ones (or forever, cut off).
  const tokenVerifier = new AccessTokenVerifier(resume?.accessKeys);
  const verifier = new CachedTokenVerifier(options.verifier ?? routeTokenVerifier(tokenVerifier));
  const wildcardDomain = settings.wildcardDomain ?? "";
  const plane: DataPlane = {
    index: () => index,
    lookup:
      settings.frontendMode === "port"
        ? (req) => index.byPort.get(req.socket.localPort ?? 0)
        : (req): ServedRoute | undefined => {
            const subdomain = subdomainOfHost(req.headers.host, wildcardDomain);
            return subdomain === undefined ? undefined : index.bySubdomain.get(subdomain);
          },
    tls: settings.tls !== null,
    trusted: proxyaddr.compile(settings.trustedProxies),
    verifier,
    metrics,
    activity,
    tunnels,
    agent: new http.Agent({ keepAlive: true, scheduling: "lifo" }),
    logger,
  };

  const frontends = await openFrontends(settings, plane);
  const readiness = (): Readiness => ({
    ready: tableApplied && !stopping,
    coordinatorConnected,
    version: index.version,
  });
  let ops: Awaited<ReturnType<typeof startOpsServer>>;
  try {
    ops = await startOpsServer(settings.bindHost, settings.opsPort, metrics, readiness);
  } catch (error) {
    frontends.stopAccepting();
    throw error;
  }

  let saveTimer: NodeJS.Timeout | undefined;
  const scheduleSave = (): void => {
    if (saveTimer !== undefined) return;
    saveTimer = setTimeout(() => {
      saveTimer = undefined;
      const state = link.client?.resumeState;
      if (state !== undefined) void store.save(state);
    }, SAVE_DELAY_MS);
  };

  const worker = new WorkerClient({
    coordinatorUrl: settings.coordinatorUrl,
    registrationToken: settings.registrationToken,
    registration: registrationOf(settings),
    ...options.client,
    ...(resume === undefined ? {} : { resume }),
    apply: (change) => {
      const started = performance.now();
      const update = applyChangeToIndex(index, change, scope);
      install(update, (performance.now() - started) / 1000);
      scheduleSave();
      if (update.refused.length === 0) return undefined;
      const named = update.refused
        .slice(0, NACK_ROUTES_NAMED)
        .map(({ id, reason }) => `${id}: ${reason}`)
        .join("; ");
      const more = update.refused.length - NACK_ROUTES_NAMED;
      return `routes not served: ${named}${more > 0 ? `; and ${more} more` : ""}`;
    },
  });
  link.client = worker;
  worker.on("registered", (event) => {
    // An empty table at version 0 is no change, so `apply` did not run: it is applied all the same.
    tableApplied = true;
    logger.info("registered", {
      workerId: event.workerId,
      version: event.version,
      routes: event.routes,
    });
  });
  worker.on("connected", (event) => {
    coordinatorConnected = true;
    metrics.coordinatorConnected.set(1);
    logger.info("stream connected", { instance: event.instanceId });
  });
  worker.on("disconnected", (event) => {
    coordinatorConnected = false;
    metrics.coordinatorConnected.set(0);
    logger.warn("stream lost; serving the last table", {
      code: event.code,
      version: index.version,
    });
  });
  worker.on("accessKeys", (keys) => {
    tokenVerifier.setKeys(keys);
    // A key taken out of the set must stop admitting the tokens it signed.
    verifier.clear();
    scheduleSave();
  });
  worker.on("error", (error) => logger.warn("coordinator link", { error: error.message }));
  worker.on("stopped", (event) => {
    coordinatorConnected = false;
    metrics.coordinatorConnected.set(0);
    if (event.cause !== "stopped") {
      logger.error("worker client stopped", { cause: event.cause, error: event.error?.message });
      options.onFatal?.(event.error ?? new Error(`worker client stopped: ${event.cause}`));
    }
  });
  worker.start().catch((error: unknown) => {
    // `stopped` has told onFatal already; the rejection only repeats it.
    logger.debug("start rejected", { error: String(error) });
  });

  let stopPromise: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    stopping = true;
    const drainMs = settings.drainS * 1000;
    frontends.stopAccepting();
    await Promise.all([frontends.drainHttp(drainMs), tunnels.drainAll(drainMs)]);
    prober.stopAll();
    clearTimeout(saveTimer);
    const state = worker.resumeState;
    await worker.stop();
    if (state !== undefined) await store.save(worker.resumeState ?? state);
    plane.agent.destroy();
    await ops.close();
  };

  return {
    addresses: { traffic: frontends.addresses, ops: ops.address },
    status: () => ({ ...readiness(), workerId: worker.workerId, routes: index.byId.size }),
    index: () => index,
    reloadTls: () => {
      try {
        frontends.reloadTls();
        logger.info("TLS certificate reloaded");
      } catch (error) {
        logger.error("TLS certificate not reloaded; the previous one stays", {
          error: String(error),
        });
      }
    },
    stop: () => {
      stopPromise ??= shutdown();
      return stopPromise;
    },
  };
}
