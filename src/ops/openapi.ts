import Joi from "joi";
import { createRequire } from "node:module";
import { accessTokenQuerySchema } from "../access/router.js";
import { accessTokenRequestSchema } from "../access/schema.js";
import {
  deleteBySessionQuerySchema,
  listRoutesQuerySchema,
  mutationQuerySchema,
  routeBatchSchema,
  routeCreateSchema,
  routePatchSchema,
} from "../routes/schema.js";
import {
  deleteWorkerQuerySchema,
  drainQuerySchema,
  listWorkersQuerySchema,
  registerSchema,
} from "../workers/schema.js";
import {
  accessTokenSchema,
  batchAnswerSchema,
  jwksSchema,
  problemSchema,
  registeredSchema,
  routePageSchema,
  routeSchema,
  serviceIndexSchema,
  sessionDeletedSchema,
  statusSchema,
  workerSchema,
} from "./response-schemas.js";

type Role = "manager" | "admin" | "registration" | "worker";

interface Operation {
  method: "get" | "post" | "patch" | "delete";
  /** OpenAPI path template, e.g. /routes/{id}. */
  path: string;
  summary: string;
  roles: Role[];
  query?: Joi.ObjectSchema;
  body?: Joi.Schema;
  example?: object;
  ifMatch?: boolean;
  /** Request headers of the operation's own, besides Authorization and If-Match. */
  headers?: Array<{ name: string; description: string }>;
  responses: Record<number, { description: string; schema?: Joi.Schema }>;
}

// joi-to-json is CommonJS exporting one function, which its typings do not describe. It reads
// nothing of what it is given but `describe()`.
const joiToJson = createRequire(import.meta.url)("joi-to-json") as (
  schema: { describe(): unknown },
  mode: "open-api-3.1",
) => object;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** Marks, through joi-to-json, the objects whose keys a schema gives (label maps). */
const MAP_MARK = "x-appproxy-map";

/**
 * The JSON Schema of a joi schema. joi-to-json drops object keys given by a schema
 * (`.pattern(Joi.string(), …)`: labels, worker selectors), which documents every label map as
 * always empty, and documents every `.ip()` as IPv4 although IPv6 and CIDR blocks are accepted;
 * the joi description is corrected before it converts it, and the label maps filled in after.
 */
function jsonSchema(schema: Joi.Schema): object {
  return convertDescription(schema.describe());
}

function convertDescription(description: unknown): object {
  const maps: Array<{ propertyNames: object; additionalProperties: object }> = [];
  const one = (schemas: object[]) => (schemas.length === 1 ? schemas[0]! : { anyOf: schemas });
  const prepare = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(prepare);
    if (!isRecord(node)) return node;
    const out = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, prepare(v)]));
    if (out.type === "string" && Array.isArray(out.rules)) out.rules = out.rules.flatMap(ipRule);
    const patterns = Array.isArray(node.patterns) ? node.patterns.filter(isRecord) : [];
    const keyed = patterns.filter((p) => p.schema !== undefined);
    if (node.type === "object" && keyed.length > 0) {
      maps.push({
        propertyNames: one(keyed.map((p) => convertDescription(p.schema))),
        additionalProperties: one(keyed.map((p) => convertDescription(p.rule))),
      });
      const rest = (out.patterns as unknown[]).filter((p) => isRecord(p) && p.schema === undefined);
      if (rest.length > 0) out.patterns = rest;
      else delete out.patterns;
      out.flags = { ...(isRecord(out.flags) ? out.flags : {}), unknown: true };
      out.metas = [...(Array.isArray(out.metas) ? out.metas : []), { [MAP_MARK]: maps.length - 1 }];
    }
    return out;
  };
  const fill = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(fill);
    if (!isRecord(node)) return node;
    const out = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, fill(v)]));
    const map = typeof out[MAP_MARK] === "number" ? maps[out[MAP_MARK]] : undefined;
    if (map) {
      delete out[MAP_MARK];
      Object.assign(out, map);
      if (isRecord(out.properties) && Object.keys(out.properties).length === 0) {
        delete out.properties;
      }
    }
    return out;
  };
  const prepared = prepare(description);
  return fill(joiToJson({ describe: () => prepared }, "open-api-3.1")) as object;
}

/** An `ip` rule as JSON Schema can say it: no format where a CIDR block may come. */
function ipRule(rule: unknown): unknown[] {
  if (!isRecord(rule) || rule.name !== "ip") return [rule];
  const args = isRecord(rule.args) ? rule.args : {};
  const options = isRecord(args.options) ? args.options : {};
  if (options.cidr !== "forbidden") return [];
  // joi keeps `version: undefined` in the options; an explicit list makes IPv4 or IPv6.
  const version = options.version ?? ["ipv4", "ipv6"];
  return [{ ...rule, args: { ...args, options: { ...options, version } } }];
}

export const EXAMPLES = {
  register: {
    name: "w1",
    advertised_host: "w1.example.com",
    frontend_mode: "port",
    port_range: [10200, 10299],
    wildcard_domain: null,
    protocols: ["http", "tcp"],
    modes: ["interactive", "inference"],
    tls: false,
    capacity: null,
    labels: {},
    dedicated: false,
    wildcard_traffic_port: null,
  },
  route: {
    session_id: "sess-1",
    app: "jupyter",
    protocol: "http",
    mode: "interactive",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
    open_to_public: false,
    allowed_client_ips: ["10.0.0.0/8"],
  },
  patch: { upstreams: [{ host: "10.0.0.6", port: 8888, weight: 1 }], open_to_public: true },
  accessToken: { user_id: "u1", ttl_s: 28800 },
};

const mutation = (extra: Record<number, { description: string; schema?: Joi.Schema }>) => ({
  ...extra,
  202: { description: "wait=applied timed out: X-Propagation: pending; the body of the success." },
});

/** Every REST operation the coordinator serves, with its schemas: the source of /openapi.json. */
export const OPERATIONS: Operation[] = [
  {
    method: "post",
    path: "/workers/register",
    summary: "Register a proxy worker (again, by name)",
    roles: ["registration"],
    body: registerSchema,
    example: EXAMPLES.register,
    headers: [
      {
        name: "X-Worker-Token",
        description: "The worker's current token: needed to register a known name again",
      },
    ],
    responses: {
      200: { description: "Known worker, same identity", schema: registeredSchema },
      201: { description: "New worker", schema: registeredSchema },
      409: {
        description:
          "The name is taken and X-Worker-Token is not its worker's token, or address fields changed while it holds routes",
      },
    },
  },
  {
    method: "get",
    path: "/workers",
    summary: "List workers",
    roles: ["manager", "admin"],
    query: listWorkersQuerySchema,
    responses: {
      200: { description: "Workers", schema: workerListSchema() },
    },
  },
  {
    method: "get",
    path: "/workers/{id}",
    summary: "One worker",
    roles: ["manager", "admin"],
    responses: { 200: { description: "The worker", schema: workerSchema } },
  },
  {
    method: "post",
    path: "/workers/{id}/drain",
    summary: "Stop placing routes on a worker; migrate=true moves its routes now, in one version",
    roles: ["manager", "admin"],
    query: drainQuerySchema,
    responses: mutation({ 200: { description: "The worker", schema: workerSchema } }),
  },
  {
    method: "post",
    path: "/workers/{id}/undrain",
    summary: "Make a drained worker eligible again",
    roles: ["manager", "admin"],
    query: mutationQuerySchema,
    responses: mutation({ 200: { description: "The worker", schema: workerSchema } }),
  },
  {
    method: "delete",
    path: "/workers/{id}",
    summary: "Remove a worker, moving its routes in the same version",
    roles: ["manager", "admin"],
    query: deleteWorkerQuerySchema,
    responses: mutation({
      204: { description: "Removed" },
      409: { description: "Some routes have nowhere to go (named in `routes`); nothing changed" },
    }),
  },
  {
    method: "get",
    path: "/workers/{id}/stream",
    summary: "The worker's stream (WebSocket upgrade; frames in docs/stream.md)",
    roles: ["worker"],
    responses: {
      101: { description: "Switching Protocols" },
      400: { description: "`since` is not a version" },
      404: { description: "Unknown or removed worker" },
      426: { description: "Not a WebSocket upgrade (`Upgrade: websocket` names what is needed)" },
      503: { description: "The coordinator is stopping, or cannot read the database" },
    },
  },
  {
    method: "post",
    path: "/routes",
    summary: "Create a route (placed and allocated unless pinned)",
    roles: ["manager"],
    query: mutationQuerySchema,
    body: routeCreateSchema,
    example: EXAMPLES.route,
    responses: mutation({
      200: { description: "Retry of an existing id with the same body", schema: routeSchema },
      201: { description: "Created; Location, ETag, X-Routing-Version", schema: routeSchema },
      409: { description: "Port or subdomain taken, or the id exists with another body" },
      422: { description: "Pinned worker unknown or not eligible, or port outside its range" },
      503: { description: "No worker can take the route (Retry-After)" },
    }),
  },
  {
    method: "post",
    path: "/routes/batch",
    summary: "Create up to 1000 routes, all or nothing, in one version",
    roles: ["manager"],
    query: mutationQuerySchema,
    body: routeBatchSchema,
    example: { routes: [EXAMPLES.route] },
    responses: mutation({
      201: { description: "Created, in the order given", schema: batchAnswerSchema },
      409: { description: "A port or subdomain is taken" },
      503: { description: "No worker can take some route (Retry-After)" },
    }),
  },
  {
    method: "get",
    path: "/routes",
    summary: "List routes (filters, cursor pagination)",
    roles: ["manager", "admin"],
    query: listRoutesQuerySchema,
    responses: { 200: { description: "A page", schema: routePageSchema } },
  },
  {
    method: "delete",
    path: "/routes",
    summary: "Delete a finished session's routes in one version",
    roles: ["manager"],
    query: deleteBySessionQuerySchema,
    responses: mutation({ 200: { description: "Deleted", schema: sessionDeletedSchema } }),
  },
  {
    method: "get",
    path: "/routes/{id}",
    summary: "One route (ETag)",
    roles: ["manager", "admin"],
    responses: { 200: { description: "The route", schema: routeSchema } },
  },
  {
    method: "patch",
    path: "/routes/{id}",
    summary: "Change a route's upstreams, health check, access or expiry",
    roles: ["manager"],
    query: mutationQuerySchema,
    body: routePatchSchema,
    example: EXAMPLES.patch,
    ifMatch: true,
    responses: mutation({
      200: { description: "The changed route", schema: routeSchema },
      412: { description: "If-Match does not match" },
    }),
  },
  {
    method: "delete",
    path: "/routes/{id}",
    summary: "Delete a route",
    roles: ["manager"],
    query: mutationQuerySchema,
    ifMatch: true,
    responses: mutation({
      204: { description: "Deleted" },
      412: { description: "If-Match does not match" },
    }),
  },
  {
    method: "post",
    path: "/routes/{id}/tokens",
    summary: "Issue an access token for a route (an Ed25519 JWT) and its browser setup URL",
    roles: ["manager"],
    query: accessTokenQuerySchema,
    body: accessTokenRequestSchema,
    example: EXAMPLES.accessToken,
    responses: {
      201: { description: "The token, its expiry and setup_url", schema: accessTokenSchema },
      422: { description: "A tcp route: tcp routes take no access tokens" },
    },
  },
  {
    method: "get",
    path: "/.well-known/jwks.json",
    summary: "The public keys that verify access tokens (a JWK Set)",
    roles: [],
    responses: { 200: { description: "JWK Set", schema: jwksSchema } },
  },
  {
    method: "get",
    path: "/",
    summary: "What this service is: name, version, links to its other paths and docs",
    roles: [],
    responses: { 200: { description: "The service's index", schema: serviceIndexSchema } },
  },
  {
    method: "get",
    path: "/status",
    summary: "The coordinator's and the fleet's state (admin, or public with PUBLIC_STATUS)",
    roles: ["admin"],
    responses: { 200: { description: "Status", schema: statusSchema } },
  },
  {
    method: "get",
    path: "/healthz",
    summary: "200 while the process serves",
    roles: [],
    responses: { 200: { description: "Serving" } },
  },
  {
    method: "get",
    path: "/readyz",
    summary: "200 when the database answers and migrations are applied",
    roles: [],
    responses: { 200: { description: "Ready" }, 503: { description: "Not ready" } },
  },
  {
    method: "get",
    path: "/metrics",
    summary: "Prometheus metrics",
    roles: [],
    responses: { 200: { description: "Prometheus text" } },
  },
  {
    method: "get",
    path: "/openapi.json",
    summary: "This document",
    roles: [],
    responses: { 200: { description: "OpenAPI 3.1" } },
  },
];

function workerListSchema(): Joi.Schema {
  return Joi.object({ items: Joi.array().items(workerSchema) });
}

function queryParameters(schema: Joi.ObjectSchema | undefined): object[] {
  if (!schema) return [];
  const described = jsonSchema(schema) as {
    properties?: Record<string, object>;
    required?: string[];
  };
  return Object.entries(described.properties ?? {}).map(([name, s]) => ({
    name,
    in: "query",
    required: described.required?.includes(name) ?? false,
    schema: s,
  }));
}

function operationObject(op: Operation): object {
  const parameters: object[] = [];
  if (op.path.includes("{id}")) {
    parameters.push({
      name: "id",
      in: "path",
      required: true,
      schema: { type: "string", format: "uuid" },
    });
  }
  if (op.path.endsWith("/stream")) {
    parameters.push({
      name: "since",
      in: "query",
      required: false,
      schema: { type: "integer", minimum: 0 },
    });
  }
  parameters.push(...queryParameters(op.query));
  if (op.ifMatch) {
    parameters.push({
      name: "If-Match",
      in: "header",
      required: false,
      schema: { type: "string" },
    });
  }
  for (const header of op.headers ?? []) {
    parameters.push({
      name: header.name,
      in: "header",
      required: false,
      description: header.description,
      schema: { type: "string" },
    });
  }
  const responses: Record<string, object> = {};
  for (const [status, r] of Object.entries(op.responses)) {
    responses[status] = r.schema
      ? {
          description: r.description,
          content: { "application/json": { schema: jsonSchema(r.schema) } },
        }
      : { description: r.description };
  }
  const problem = {
    content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
  };
  if (op.body || op.query) responses["400"] ??= { description: "Invalid request", ...problem };
  if (op.roles.length > 0) {
    responses["401"] ??= { description: "No or unknown token", ...problem };
    responses["403"] ??= { description: "Token of another role", ...problem };
  }
  if (op.path.includes("{id}")) responses["404"] ??= { description: "Not found", ...problem };
  if (op.body) {
    responses["413"] ??= { description: "Body over 1 MiB", ...problem };
    responses["415"] ??= { description: "Body is not JSON", ...problem };
  }
  return {
    summary: op.summary,
    operationId: `${op.method}${op.path.replace(/[{}]/g, "").replace(/[/.-](\w)/g, (_m, c: string) => c.toUpperCase())}`,
    ...(op.roles.length > 0
      ? { security: [{ bearer: [] }], "x-roles": op.roles }
      : { security: [] }),
    parameters,
    ...(op.body
      ? {
          requestBody: {
            required: true,
            content: {
              "application/json": {
                schema: jsonSchema(op.body),
                ...(op.example ? { example: op.example } : {}),
              },
            },
          },
        }
      : {}),
    responses,
  };
}

/** The OpenAPI 3.1 document, generated from the joi schemas that validate requests. */
export function openApiDocument(version: string): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const op of OPERATIONS) {
    paths[op.path] ??= {};
    paths[op.path]![op.method] = operationObject(op);
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "appproxy-coordinator",
      version,
      description:
        "Routing coordinator for application-proxy fleets. Authentication: `Authorization: Bearer <token>`; `x-roles` names the roles an operation accepts.",
    },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { Problem: jsonSchema(problemSchema) },
    },
    paths,
  };
}
