import http from "node:http";
import type net from "node:net";
import proxyaddr from "proxy-addr";
import { createLogger, type Logger } from "../logger.js";
import { AccessTokenVerifier } from "../client/access-token.js";
import { routeTokenVerifier, type RouteTokenVerifier } from "./access.js";
import { ActivityMeter } from "./activity-meter.js";
import { CachedTokenVerifier } from "./cached-verifier.js";
import { ControlLink } from "./control-link.js";
import type { DataPlane } from "./data-plane.js";
import { openFrontends } from "./frontends.js";
import { HealthProber } from "./health-prober.js";
import { WorkerMetrics } from "./metrics.js";
import { startOpsServer, type Readiness } from "./ops-server.js";
import {
  ServingIndex,
  subdomainOfHost,
  type IndexUpdate,
  type RouteIndex,
  type ServedRoute,
} from "./route-index.js";
import type { ServingScope } from "./route-validation.js";
import { registrationOf, type ProxySettings } from "./settings.js";
import { TunnelRegistry } from "./tunnel-registry.js";

export interface ProxyWorkerOptions {
  logger?: Logger;
  /** Checks access tokens; by default the client library's verifier over the coordinator's keys. */
  verifier?: RouteTokenVerifier;
  /**
   * Called when the coordinator refuses the registration for good (bad token, conflict), or the
   * control thread fails; never before startProxyWorker has resolved.
   */
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
  const metrics = new WorkerMetrics(settings.eventLoopResolutionMs);
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
  const index = new ServingIndex(scope);
  let tableApplied = false;
  let coordinatorConnected = false;
  let stopping = false;
  let workerId: string | undefined;

  // The coordinator's stream, its frames and DATA_DIR are the control thread's: this thread only
  // serves, and takes each table change in as slices between requests.
  const link = new ControlLink(index, {
    coordinatorUrl: settings.coordinatorUrl,
    registrationToken: settings.registrationToken,
    registration: registrationOf(settings),
    client: options.client ?? {},
    dataDir: settings.dataDir,
    owner: { name: settings.name, coordinatorUrl: settings.coordinatorUrl },
  });
  const activity = new ActivityMeter((routeId, at) => link.reportActivity(routeId, at.getTime()));
  // Keys kept in DATA_DIR check tokens until a coordinator sends newer ones (or forever, cut off).
  const tokenVerifier = new AccessTokenVerifier();
  const verifier = new CachedTokenVerifier(options.verifier ?? routeTokenVerifier(tokenVerifier));

  const install = (update: IndexUpdate, seconds: number): void => {
    tableApplied = true;
    for (const id of update.departed) {
      tunnels.drainRoute(id, settings.drainS * 1000);
      activity.forget(id);
    }
    prober.follow(update);
    metrics.applySeconds.observe(seconds);
    metrics.tableVersion.set(index.version);
    metrics.routesServed.set(index.byId.size);
    for (const { id, reason } of update.refused)
      logger.warn("route not served", { route: id, reason });
  };
  link.on("change", install);
  link.on("registered", (event) => {
    // An empty table at version 0 is no change, so nothing was applied: it is served all the same.
    tableApplied = true;
    workerId = event.workerId;
    logger.info("registered", event);
  });
  link.on("connected", (event) => {
    coordinatorConnected = true;
    workerId = event.workerId;
    metrics.coordinatorConnected.set(1);
    logger.info("stream connected", { instance: event.instanceId });
  });
  link.on("disconnected", (event) => {
    coordinatorConnected = false;
    metrics.coordinatorConnected.set(0);
    logger.warn("stream lost; serving the last table", {
      code: event.code,
      version: index.version,
    });
  });
  link.on("accessKeys", (keys) => {
    tokenVerifier.setKeys(keys);
    // A key taken out of the set must stop admitting the tokens it signed.
    verifier.clear();
  });
  link.on("warning", (message) => logger.warn("coordinator link", { error: message }));
  let started = false;
  let fatalBeforeStart: Error | undefined;
  link.on("stopped", (event) => {
    coordinatorConnected = false;
    metrics.coordinatorConnected.set(0);
    if (event.cause !== "stopped") {
      logger.error("worker client stopped", { cause: event.cause, error: event.error });
      const error = new Error(event.error ?? `worker client stopped: ${event.cause}`);
      // Told only once startProxyWorker has answered: the caller's handler may use its answer.
      if (started) options.onFatal?.(error);
      else fatalBeforeStart = error;
    }
  });

  const kept = await link.kept;
  if (kept !== null) {
    workerId = kept.workerId;
    if (kept.accessKeys !== undefined) tokenVerifier.setKeys(kept.accessKeys);
    logger.info("serving the table kept in DATA_DIR", {
      version: kept.version,
      routes: index.byId.size,
    });
  }

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
    await link.stop();
    throw error;
  }

  let stopPromise: Promise<void> | undefined;
  const shutdown = async (): Promise<void> => {
    stopping = true;
    const drainMs = settings.drainS * 1000;
    frontends.stopAccepting();
    await Promise.all([frontends.drainHttp(drainMs), tunnels.drainAll(drainMs)]);
    prober.stopAll();
    await link.stop();
    plane.agent.destroy();
    await ops.close();
  };

  started = true;
  if (fatalBeforeStart !== undefined) {
    const error = fatalBeforeStart;
    setImmediate(() => options.onFatal?.(error));
  }
  return {
    addresses: { traffic: frontends.addresses, ops: ops.address },
    status: () => ({ ...readiness(), workerId, routes: index.byId.size }),
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
