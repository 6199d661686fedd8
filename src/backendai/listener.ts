import type { AddressInfo } from "node:net";
import type { Knex } from "knex";
import { AccessTokenIssuer } from "../access/issuer.js";
import type { AccessKeyRing } from "../access/keys.js";
import type { Config } from "../config.js";
import { createHttpServer } from "../http/server.js";
import type { Logger } from "../logger.js";
import { RouteService } from "../routes/service.js";
import type { Committer } from "../versioning/committer.js";
import type { PropagationWatch } from "../versioning/propagation.js";
import { createBackendAiApp } from "./app.js";
import { BackendAiAuth } from "./auth.js";
import { EndpointService } from "./endpoint-service.js";
import { SessionService } from "./session-service.js";

export interface BackendAiListener {
  readonly url: string;
  readonly port: number;
  /** Stops taking requests, lets those under way finish (up to `graceMs`), then closes. */
  close(graceMs: number): Promise<void>;
}

/** Starts the Backend.AI-compatible listener on BACKENDAI_PORT, beside the coordinator's own. */
export async function startBackendAiListener(deps: {
  config: Config;
  secret: string;
  knex: Knex;
  committer: Committer;
  accessKeys: AccessKeyRing;
  watch: PropagationWatch;
  logger: Logger;
}): Promise<BackendAiListener> {
  const { config, knex, committer, logger } = deps;
  const routes = new RouteService(knex, committer);
  const issuer = new AccessTokenIssuer(deps.accessKeys);
  const app = createBackendAiApp({
    knex,
    endpoints: new EndpointService(knex, committer, routes, issuer),
    sessions: new SessionService(knex, routes, issuer, deps.watch),
    auth: new BackendAiAuth(deps.secret),
    allowUnauthenticatedConf: config.backendaiAllowUnauthenticatedConf,
    advertiseUrl: config.backendaiAdvertiseUrl,
    logger,
  });
  // The same limits as the main listener: no connection is held for free here either.
  const server = createHttpServer(app, {
    maxConnections: config.maxConnections,
    headersTimeoutMs: config.headersTimeoutS * 1000,
    requestTimeoutMs: config.requestTimeoutS * 1000,
    idleTimeoutMs: config.idleTimeoutS * 1000,
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(config.backendaiPort, config.backendaiHost, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  const bound = config.backendaiHost;
  const host = bound === "0.0.0.0" || bound === "::" ? "127.0.0.1" : bound;
  logger.info("backend.ai listener listening", { port, host: bound });
  return {
    url: `http://${host}:${port}`,
    port,
    close: (graceMs) =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), graceMs);
        force.unref();
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }),
  };
}
