import { Router, type Request } from "express";
import type { JSONWebKeySet } from "jose";
import type { TokenRegistry } from "../auth/tokens.js";
import { notFound } from "../errors.js";
import { answerMutation } from "../http/answer.js";
import { requireRole } from "../http/auth.js";
import { jsonBody } from "../http/body.js";
import { validate } from "../http/validate.js";
import type { PropagationQuery } from "../shared/schema-parts.js";
import type { PropagationWatch } from "../versioning/propagation.js";
import type { WorkerStatus } from "./model.js";
import {
  deleteWorkerQuerySchema,
  drainQuerySchema,
  listWorkersQuerySchema,
  mutationQuerySchema,
  readQuerySchema,
  registerSchema,
  type Registration,
} from "./schema.js";
import type { WorkerService } from "./service.js";

const registerBody = registerSchema.required();

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function workerId(raw: string): string {
  if (!UUID.test(raw)) throw notFound(`Worker ${raw} does not exist.`);
  return raw.toLowerCase();
}

const firstForwarded = (value: string | undefined): string | undefined =>
  value?.split(",")[0]?.trim() || undefined;

/**
 * Where the caller reaches this coordinator's stream: as it reached its HTTP, including what a
 * proxy in front says of the original scheme, host and path prefix (X-Forwarded-Proto, -Host,
 * -Prefix). Trusting these headers is safe here: the answer only tells the caller itself where to
 * connect, and the stream authenticates whoever connects.
 */
function streamUrl(req: Request, id: string): string {
  const proto = firstForwarded(req.get("x-forwarded-proto")) ?? req.protocol;
  const scheme = proto === "https" || proto === "wss" ? "wss" : "ws";
  const host = firstForwarded(req.get("x-forwarded-host")) ?? req.get("host") ?? "localhost";
  const prefix = (firstForwarded(req.get("x-forwarded-prefix")) ?? "").replace(/\/+$/, "");
  return `${scheme}://${host}${prefix}/workers/${id}/stream`;
}

/**
 * The worker whose token the request carries in X-Worker-Token, if it carries exactly one valid
 * worker token. The token is checked like a bearer token (an HMAC compared in constant time).
 */
function provenWorker(req: Request, tokens: TokenRegistry): string | undefined {
  const header = req.headers["x-worker-token"];
  if (typeof header !== "string" || header.includes(",")) return undefined;
  const principal = tokens.identify(header.trim());
  return principal?.role === "worker" ? principal.workerId : undefined;
}

/** HTTP for /workers. */
export function workersRouter(deps: {
  workers: WorkerService;
  tokens: TokenRegistry;
  watch: PropagationWatch;
  heartbeatIntervalS: number;
  /** The public access-token keys, for the worker to verify access tokens offline. */
  accessKeys: Readonly<JSONWebKeySet>;
}): Router {
  const { workers, tokens, watch } = deps;
  const operators = requireRole(tokens, "manager", "admin");
  const router = Router();

  router.post(
    "/workers/register",
    requireRole(tokens, "registration"),
    jsonBody(),
    async (req, res) => {
      validate(mutationQuerySchema, req.query, "query");
      const registration = validate<Registration>(registerBody, req.body);
      const registered = await workers.register(registration, provenWorker(req, tokens));
      res.setHeader("X-Routing-Version", String(registered.version));
      res.status(registered.created ? 201 : 200).json({
        worker: registered.worker,
        token: tokens.workerToken(registered.worker.id),
        stream_url: streamUrl(req, registered.worker.id),
        heartbeat_interval_s: deps.heartbeatIntervalS,
        version: registered.version,
        routes: registered.routes,
        access_keys: deps.accessKeys,
      });
    },
  );

  router.get("/workers", operators, async (req, res) => {
    const query = validate<{ status?: WorkerStatus }>(listWorkersQuerySchema, req.query, "query");
    res.json({ items: await workers.list(query.status) });
  });

  router.get("/workers/:id", operators, async (req, res) => {
    const id = workerId(req.params.id as string);
    validate(readQuerySchema, req.query, "query");
    res.json(await workers.get(id));
  });

  router.post("/workers/:id/drain", operators, async (req, res) => {
    const id = workerId(req.params.id as string);
    const query = validate<{ migrate?: boolean } & PropagationQuery>(
      drainQuerySchema,
      req.query,
      "query",
    );
    const committed = await workers.drain(id, query.migrate === true);
    await answerMutation(res, watch, committed, query, 200, committed.result);
  });

  router.post("/workers/:id/undrain", operators, async (req, res) => {
    const id = workerId(req.params.id as string);
    const query = validate<PropagationQuery>(mutationQuerySchema, req.query, "query");
    const committed = await workers.undrain(id);
    await answerMutation(res, watch, committed, query, 200, committed.result);
  });

  router.delete("/workers/:id", operators, async (req, res) => {
    const id = workerId(req.params.id as string);
    const query = validate<{ force?: boolean } & PropagationQuery>(
      deleteWorkerQuerySchema,
      req.query,
      "query",
    );
    const committed = await workers.remove(id, query.force === true);
    await answerMutation(res, watch, committed, query, 204);
  });

  return router;
}
