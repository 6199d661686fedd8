import express, { type Express, type Request, type RequestHandler, type Response } from "express";
import type { Knex } from "knex";
import { BODY_LIMIT_BYTES } from "../http/body.js";
import { requestLog } from "../http/request-log.js";
import { validate } from "../http/validate.js";
import type { Logger } from "../logger.js";
import type { BackendAiAuth } from "./auth.js";
import type { EndpointService } from "./endpoint-service.js";
import { backendAiErrorHandler, invalidParams, unknownBackendAiPath } from "./errors.js";
import type { SessionService } from "./session-service.js";
import {
  addQuerySchema,
  authQuerySchema,
  bulkCreateSchema,
  bulkDeleteSchema,
  bulkRoutesSchema,
  bulkUnregisterSchema,
  confSchema,
  deploymentOf,
  healthCheckUpdateSchema,
  singleCreateSchema,
  tokenSchema,
  type AppRequest,
  type AuthQuery,
  type ConfInput,
  type CreateItem,
  type DeploymentRef,
  type HealthCheckInput,
  type ReplicaInput,
} from "./schema.js";

export interface BackendAiAppDeps {
  knex: Knex;
  endpoints: EndpointService;
  sessions: SessionService;
  auth: BackendAiAuth;
  allowUnauthenticatedConf: boolean;
  /** The base URL browsers reach this listener at; unset: the one the request came to. */
  advertiseUrl: string | undefined;
  logger: Logger;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * The request's parameters as their handlers read them: the JSON body, or, where there is no
 * body, the query string (whose "true" and "8080" the schemas convert).
 */
function paramsOf(req: Request): unknown {
  const text = typeof req.body === "string" ? req.body : "";
  if (text.trim().length === 0) return { ...(req.query as Record<string, unknown>) };
  try {
    return JSON.parse(text);
  } catch {
    throw invalidParams("Malformed body");
  }
}

/** A deployment id from the path; an id that is not a UUID names no endpoint. */
function deploymentParam(req: Request): string {
  const raw = req.params.id as string;
  if (!UUID.test(raw)) {
    throw invalidParams("Input validation error", [
      { type: "uuid_parsing", loc: ["endpoint_id"], msg: "must be a valid UUID" },
    ]);
  }
  return raw.toLowerCase();
}

function withVersion(res: Response, version: number | undefined): Response {
  if (version !== undefined) res.setHeader("X-Routing-Version", String(version));
  return res;
}

/**
 * Their CORS: `*` on every answer (the browser calls the proxy paths from the web UI's origin,
 * and reads errors too), and preflights answered for any method and header.
 */
const cors: RequestHandler = (req, res, next) => {
  res.setHeader("Access-Control-Allow-Origin", "*");
  res.setHeader("Access-Control-Expose-Headers", "*");
  if (req.method !== "OPTIONS") return next();
  res.setHeader("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
  res.setHeader(
    "Access-Control-Allow-Headers",
    req.get("access-control-request-headers") ?? "Content-Type, X-BackendAI-Token",
  );
  res.status(204).end();
};

/** Whether the caller asked for JSON (their `mime_match(accept, "application/json", strict)`). */
const wantsJson = (req: Request): boolean =>
  (req.get("accept") ?? "")
    .split(",")
    .some((part) => part.split(";")[0]!.trim().toLowerCase() === "application/json");

/**
 * The second listener: Backend.AI's App Proxy coordinator API, over the same database, routes
 * and versions as the coordinator's own. Thin: each path validates, calls one service, and
 * answers in their shape.
 */
export function createBackendAiApp(deps: BackendAiAppDeps): Express {
  const { endpoints, sessions, auth } = deps;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  app.use(requestLog(deps.logger));
  app.use(cors);
  app.use(express.text({ type: () => true, limit: BODY_LIMIT_BYTES, defaultCharset: "utf-8" }));
  const manager = auth.required();

  app.get("/status", (_req, res) => {
    res.json({ api_version: "v2", advertise_address: deps.advertiseUrl ?? null });
  });

  app.post("/v2/conf", auth.conf(deps.allowUnauthenticatedConf), async (req, res) => {
    const input = validate<ConfInput>(confSchema, paramsOf(req));
    res.json({ token: await sessions.conf(input) });
  });

  app.post("/v2/endpoints/bulk/routes/register", manager, async (req, res) => {
    const { endpoints: items } = validate<{
      endpoints: Array<DeploymentRef & { routes: ReplicaInput[] }>;
    }>(bulkRoutesSchema, paramsOf(req));
    const committed = await endpoints.registerReplicas(
      items.map((i) => ({ deployment: deploymentOf(i), routes: i.routes })),
    );
    withVersion(res, committed.version).json({ endpoints: committed.result });
  });

  app.post("/v2/endpoints/bulk/routes/unregister", manager, async (req, res) => {
    const { endpoints: items } = validate<{
      endpoints: Array<DeploymentRef & { route_ids: string[] }>;
    }>(bulkUnregisterSchema, paramsOf(req));
    const committed = await endpoints.unregisterReplicas(
      items.map((i) => ({ deployment: deploymentOf(i), route_ids: i.route_ids })),
    );
    withVersion(res, committed.version).json({ endpoints: committed.result });
  });

  app.post("/v2/endpoints/bulk/routes", manager, async (req, res) => {
    const { endpoints: items } = validate<{
      endpoints: Array<DeploymentRef & { routes: ReplicaInput[] }>;
    }>(bulkRoutesSchema, paramsOf(req));
    const committed = await endpoints.replaceReplicas(
      items.map((i) => ({ deployment: deploymentOf(i), routes: i.routes })),
    );
    withVersion(res, committed.version).json({ endpoints: committed.result });
  });

  app.post("/v2/endpoints/bulk", manager, async (req, res) => {
    const { endpoints: items } = validate<{ endpoints: CreateItem[] }>(
      bulkCreateSchema,
      paramsOf(req),
    );
    const synced = await endpoints.sync(items);
    withVersion(res, synced.version).json({ endpoints: synced.items });
  });

  app.delete("/v2/endpoints/bulk", manager, async (req, res) => {
    const { endpoints: items } = validate<{ endpoints: DeploymentRef[] }>(
      bulkDeleteSchema,
      paramsOf(req),
    );
    const ids = items.map(deploymentOf);
    const committed = await endpoints.remove(ids);
    withVersion(res, committed.version).json({
      endpoints: ids.map((id) => ({ deployment_id: id, success: true, error: null })),
    });
  });

  app.post("/v2/endpoints/:id/token", manager, async (req, res) => {
    const id = deploymentParam(req);
    const body = validate<{ user_uuid: string; exp: Date | number }>(tokenSchema, paramsOf(req));
    res.json({ token: await endpoints.token(id, body.user_uuid, body.exp) });
  });

  app.put("/v2/endpoints/:id/health-check", manager, async (req, res) => {
    const id = deploymentParam(req);
    const body = validate<{ health_check: HealthCheckInput | null }>(
      healthCheckUpdateSchema,
      paramsOf(req),
    );
    const committed = await endpoints.setHealthCheck(id, body.health_check);
    withVersion(res, committed.version).json({ success: true });
  });

  app.post("/v2/endpoints/:id", manager, async (req, res) => {
    const id = deploymentParam(req);
    const item = validate<CreateItem>(singleCreateSchema, paramsOf(req));
    const synced = await endpoints.sync([{ ...item, deployment_id: id, endpoint_id: undefined }]);
    const [one] = synced.items;
    withVersion(res, synced.version).json({
      success: true,
      endpoint: one!.url,
      health_check_enabled: one!.health_check_enabled,
    });
  });

  app.delete("/v2/endpoints/:id", manager, async (req, res) => {
    const committed = await endpoints.remove([deploymentParam(req)]);
    withVersion(res, committed.version).json({ success: true });
  });

  // The browser's paths: the conf token in the path (or query) is the capability.
  app.get("/v2/proxy/:token/:session_id/add", (req, res) => {
    validate<AppRequest>(addQuerySchema, req.query);
    const base = deps.advertiseUrl ?? `${req.protocol}://${req.get("host") ?? "localhost"}`;
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(req.query)) {
      if (typeof value === "string" && key !== "token" && key !== "session_id") {
        query.set(key, value);
      }
    }
    query.set("token", req.params.token as string);
    query.set("session_id", req.params.session_id as string);
    res.json({ code: 200, url: `${base}/v2/proxy/auth?${query.toString()}` });
  });

  app.get("/v2/proxy/auth", async (req, res) => {
    const query = validate<AuthQuery>(authQuerySchema, req.query);
    const opened = await sessions.open(query);
    withVersion(res, opened.version);
    if (wantsJson(req)) {
      res.json({ redirect_url: opened.redirect_url, reuse: opened.reuse });
    } else {
      res.redirect(308, opened.redirect_url);
    }
  });

  app.use(unknownBackendAiPath);
  app.use(backendAiErrorHandler(deps.logger));
  return app;
}
