import { Router } from "express";
import type { TokenRegistry } from "../auth/tokens.js";
import { badRequest, notFound } from "../errors.js";
import { answerMutation } from "../http/answer.js";
import { requireRole } from "../http/auth.js";
import { jsonBody } from "../http/body.js";
import { validate } from "../http/validate.js";
import type { PropagationQuery } from "../shared/schema-parts.js";
import type { PropagationWatch } from "../versioning/propagation.js";
import {
  deleteBySessionQuerySchema,
  listRoutesQuerySchema,
  mutationQuerySchema,
  readQuerySchema,
  routeBatchSchema,
  routeCreateSchema,
  routePatchSchema,
  type ListRoutesQuery,
  type RouteInput,
  type RoutePatch,
} from "./schema.js";
import type { RouteService } from "./service.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

// The bodies these paths take: an absent body is refused, not read as nothing to do.
const routeCreateBody = routeCreateSchema.required();
const routeBatchBody = routeBatchSchema.required();
const routePatchBody = routePatchSchema.required();

function routeId(raw: string): string {
  if (!UUID.test(raw)) throw notFound(`Route ${raw} does not exist.`);
  return raw.toLowerCase();
}

/** HTTP for /routes: validate, authorise, call the service, shape the answer. */
export function routesRouter(deps: {
  routes: RouteService;
  tokens: TokenRegistry;
  watch: PropagationWatch;
}): Router {
  const { routes, tokens, watch } = deps;
  const manager = requireRole(tokens, "manager");
  const reader = requireRole(tokens, "manager", "admin");
  const body = jsonBody();
  const router = Router();

  router.post("/routes", manager, body, async (req, res) => {
    const query = validate<PropagationQuery>(mutationQuerySchema, req.query, "query");
    const input = validate<RouteInput>(routeCreateBody, req.body);
    const committed = await routes.create([input], false);
    const route = committed.result.items[0]!;
    res.setHeader("Location", `/routes/${route.id}`);
    res.setHeader("ETag", `"${route.version}"`);
    await answerMutation(res, watch, committed, query, committed.result.created ? 201 : 200, route);
  });

  router.post("/routes/batch", manager, body, async (req, res) => {
    const query = validate<PropagationQuery>(mutationQuerySchema, req.query, "query");
    const { routes: inputs } = validate<{ routes: RouteInput[] }>(routeBatchBody, req.body);
    const committed = await routes.create(inputs, true);
    await answerMutation(res, watch, committed, query, committed.result.created ? 201 : 200, {
      version: committed.version,
      items: committed.result.items,
    });
  });

  router.get("/routes", reader, async (req, res) => {
    const query = validate<ListRoutesQuery>(listRoutesQuerySchema, req.query, "query");
    res.json(await routes.list(query));
  });

  router.delete("/routes", manager, async (req, res) => {
    if (req.query.session_id === undefined) {
      throw badRequest("DELETE /routes needs a filter: ?session_id=…", [
        { path: "query.session_id", message: "is required" },
      ]);
    }
    const query = validate<{ session_id: string } & PropagationQuery>(
      deleteBySessionQuerySchema,
      req.query,
      "query",
    );
    const committed = await routes.removeSession(query.session_id);
    await answerMutation(res, watch, committed, query, 200, {
      deleted: committed.result.deleted,
      version: committed.version,
    });
  });

  router.get("/routes/:id", reader, async (req, res) => {
    const id = routeId(req.params.id as string);
    validate(readQuerySchema, req.query, "query");
    const route = await routes.get(id);
    res.setHeader("ETag", `"${route.version}"`);
    res.json(route);
  });

  router.patch("/routes/:id", manager, body, async (req, res) => {
    const id = routeId(req.params.id as string);
    const query = validate<PropagationQuery>(mutationQuerySchema, req.query, "query");
    const patch = validate<RoutePatch>(routePatchBody, req.body);
    const committed = await routes.patch(id, patch, req.get("if-match"));
    res.setHeader("ETag", `"${committed.result.version}"`);
    await answerMutation(res, watch, committed, query, 200, committed.result);
  });

  router.delete("/routes/:id", manager, async (req, res) => {
    const id = routeId(req.params.id as string);
    const query = validate<PropagationQuery>(mutationQuerySchema, req.query, "query");
    const committed = await routes.remove(id, req.get("if-match"));
    await answerMutation(res, watch, committed, query, 204);
  });

  return router;
}
