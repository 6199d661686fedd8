import { Router } from "express";
import type { Knex } from "knex";
import type { TokenRegistry } from "../auth/tokens.js";
import type { DatabaseKind } from "../db/database.js";
import { requireRole } from "../http/auth.js";
import { readFleetSummary } from "./fleet-summary.js";
import type { Metrics } from "./metrics.js";
import { openApiDocument } from "./openapi.js";
import { PACKAGE_DESCRIPTION, PACKAGE_NAME, SOFTWARE_VERSION } from "./software-version.js";

/**
 * Paths a service's documents sit at, relative to the package (and the repository): the
 * coordinator has no public address of its own to link them at.
 */
const DOCS = {
  readme: "README.md",
  api: "docs/api.md",
  stream: "docs/stream.md",
  architecture: "docs/architecture.md",
  operations: "docs/operations.md",
};

/**
 * `/` (what this is, for anyone), /status for admins (or anyone with PUBLIC_STATUS=true),
 * /metrics and /openapi.json.
 */
export function opsRouter(deps: {
  knex: Knex;
  tokens: TokenRegistry;
  metrics: Metrics;
  instanceId: string;
  startedAt: Date;
  database: DatabaseKind;
  publicStatus: boolean;
}): Router {
  const router = Router();
  const guard = deps.publicStatus ? [] : [requireRole(deps.tokens, "admin")];

  // Someone who opens the coordinator's address in a browser or with curl learns what it is.
  router.get("/", (_req, res) => {
    res.json({
      name: PACKAGE_NAME,
      version: SOFTWARE_VERSION,
      description: PACKAGE_DESCRIPTION,
      links: {
        openapi: "/openapi.json",
        status: "/status",
        health: "/healthz",
        ready: "/readyz",
        metrics: "/metrics",
        access_keys: "/.well-known/jwks.json",
      },
      docs: DOCS,
    });
  });

  router.get("/status", ...guard, async (_req, res) => {
    const fleet = await readFleetSummary(deps.knex);
    const count = (status: string) => fleet.workers.filter((w) => w.status === status).length;
    res.json({
      coordinator: {
        instance_id: deps.instanceId,
        version: SOFTWARE_VERSION,
        started_at: deps.startedAt.toISOString(),
        uptime_s: Math.floor((Date.now() - deps.startedAt.getTime()) / 1000),
        database: deps.database,
      },
      routing: {
        version: fleet.version,
        routes: fleet.routes,
        changelog_min_version: fleet.changelogMinVersion,
        stranded_routes: fleet.stranded,
      },
      workers: {
        total: fleet.workers.length,
        registered: count("registered"),
        alive: count("alive"),
        lost: count("lost"),
        draining: count("draining"),
        connected: fleet.workers.filter((w) => w.connected).length,
        converged: fleet.workers.filter((w) => w.status !== "lost" && w.lag === 0).length,
      },
      workers_detail: fleet.workers.map((w) => ({
        id: w.id,
        name: w.name,
        status: w.status,
        connected: w.connected,
        applied_version: w.applied_version,
        lag: w.lag,
        route_count: w.route_count,
        last_seen_at: w.last_seen_at,
        instance_id: w.instance_id,
        last_nack: w.last_nack,
      })),
    });
  });

  router.get("/metrics", async (_req, res) => {
    const text = await deps.metrics.registry.metrics();
    res.type(deps.metrics.registry.contentType).send(text);
  });

  let openapi: string | undefined;
  router.get("/openapi.json", (_req, res) => {
    openapi ??= JSON.stringify(openApiDocument(SOFTWARE_VERSION));
    res.type("application/json").send(openapi);
  });

  return router;
}
