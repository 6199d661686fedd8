import express, { type Express, type Router } from "express";
import type { Knex } from "knex";
import { AccessTokenIssuer } from "./access/issuer.js";
import type { AccessKeyRing } from "./access/keys.js";
import { accessRouter } from "./access/router.js";
import { AccessTokenService } from "./access/service.js";
import type { TokenRegistry } from "./auth/tokens.js";
import { isReady } from "./db/database.js";
import { errorHandler, noOptions, unknownPath } from "./http/problem.js";
import { undecodablePath } from "./http/path.js";
import { parseQuery } from "./http/query.js";
import { requestLog } from "./http/request-log.js";
import { streamWithoutUpgrade } from "./http/upgrade-required.js";
import { removedWorkerToken } from "./http/worker-token-gate.js";
import type { Logger } from "./logger.js";
import { healthRouter } from "./ops/health-router.js";
import { routesRouter } from "./routes/router.js";
import { RouteService } from "./routes/service.js";
import type { Committer } from "./versioning/committer.js";
import type { PropagationWatch } from "./versioning/propagation.js";
import { workersRouter } from "./workers/router.js";
import { WorkerService } from "./workers/service.js";

export interface AppDeps {
  knex: Knex;
  committer: Committer;
  tokens: TokenRegistry;
  /** The access-token keys: the first signs, all are published to workers and at the JWKS path. */
  accessKeys: AccessKeyRing;
  watch: PropagationWatch;
  logger: Logger;
  heartbeatIntervalS: number;
  /** False while shutting down, so that load balancers stop sending first. */
  accepting: () => boolean;
  /** Extra routers (status, metrics, OpenAPI) mounted before the 404 fallback. */
  extraRouters?: Router[];
  observeRequest?: (method: string, route: string, status: number, seconds: number) => void;
  /** The routing version this instance knows of, for the answers to mutations that failed. */
  knownVersion?: () => number;
}

/** The HTTP app, not listening: tests and several instances start it on port 0. */
export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.set("query parser", parseQuery);
  app.use(requestLog(deps.logger, deps.observeRequest));
  app.use(undecodablePath(deps.tokens));
  app.use(noOptions);
  app.use(removedWorkerToken(deps.knex, deps.tokens));
  app.use(streamWithoutUpgrade);
  // The Manager's and the workers' paths first: the busiest, and every router a request walks
  // past costs it a match per layer. No path is served by two routers, so order is free.
  const routes = new RouteService(deps.knex, deps.committer);
  app.use(routesRouter({ routes, tokens: deps.tokens, watch: deps.watch }));
  app.use(
    workersRouter({
      workers: new WorkerService(deps.knex, deps.committer),
      tokens: deps.tokens,
      watch: deps.watch,
      heartbeatIntervalS: deps.heartbeatIntervalS,
      accessKeys: deps.accessKeys.jwks,
    }),
  );
  app.use(
    accessRouter({
      accessTokens: new AccessTokenService(routes, new AccessTokenIssuer(deps.accessKeys)),
      ring: deps.accessKeys,
      tokens: deps.tokens,
    }),
  );
  app.use(healthRouter({ ready: async () => deps.accepting() && (await isReady(deps.knex)) }));
  for (const router of deps.extraRouters ?? []) app.use(router);
  app.use(unknownPath);
  app.use(errorHandler(deps.logger, deps.knownVersion));
  return app;
}
