import { Validator } from "@seriousme/openapi-schema-validator";
import type Joi from "joi";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { accessTokenRequestSchema } from "../../src/access/schema.js";
import { createApp } from "../../src/app.js";
import { TokenRegistry } from "../../src/auth/tokens.js";
import { validate } from "../../src/http/validate.js";
import { createLogger } from "../../src/logger.js";
import { Metrics } from "../../src/ops/metrics.js";
import { EXAMPLES, OPERATIONS } from "../../src/ops/openapi.js";
import { opsRouter } from "../../src/ops/ops-router.js";
import { routeBatchSchema, routeCreateSchema, routePatchSchema } from "../../src/routes/schema.js";
import { Committer } from "../../src/versioning/committer.js";
import { PropagationWatch } from "../../src/versioning/propagation.js";
import { registerSchema } from "../../src/workers/schema.js";
import { TOKENS, startHarness, waitFor } from "../support/harness.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

interface OpenApiOperation {
  security?: unknown[];
  requestBody?: { content: Record<string, { schema: object; example?: unknown }> };
  responses: Record<string, unknown>;
}

interface OpenApiDocument {
  openapi: string;
  info: { version: string };
  paths: Record<string, Record<string, OpenApiOperation>>;
}

/** The parts of an express 5 router layer this test reads. */
interface RouterLayer {
  slash?: boolean;
  rawPath?: unknown;
  route?: { path: string | string[]; methods: Record<string, boolean | undefined> };
  handle?: { stack?: RouterLayer[] };
}

/** The upgrade path, served by the WebSocket endpoint beside the express app. */
const STREAM = "get /workers/{id}/stream";

/** The joi schemas the routers validate bodies with, by operation. */
const BODY_SCHEMAS: Record<string, Joi.Schema> = {
  "post /workers/register": registerSchema,
  "post /routes": routeCreateSchema,
  "post /routes/batch": routeBatchSchema,
  "patch /routes/{id}": routePatchSchema,
  "post /routes/{id}/tokens": accessTokenRequestSchema,
};

const toOpenApiPath = (expressPath: string) => expressPath.replace(/:(\w+)/g, "{$1}");

/** "method /path" of every route in an express router stack, nested routers included. */
function servedOperations(stack: RouterLayer[]): string[] {
  const found: string[] = [];
  for (const layer of stack) {
    if (layer.route) {
      const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
      const methods = Object.entries(layer.route.methods).filter(([, on]) => on);
      for (const path of paths) {
        for (const [method] of methods) found.push(`${method} ${toOpenApiPath(path)}`);
      }
    } else if (layer.handle?.stack) {
      // Every router is mounted at the root; a prefix would have to be added to its paths.
      expect(layer.slash, `router mounted at ${String(layer.rawPath)}`).toBe(true);
      found.push(...servedOperations(layer.handle.stack));
    }
  }
  return found;
}

function documentedOperations(doc: OpenApiDocument): string[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.keys(item).map((method) => `${method} ${path}`),
  );
}

function operation(doc: OpenApiDocument, key: string): OpenApiOperation {
  const [method, path] = key.split(" ") as [string, string];
  const op = doc.paths[path]?.[method];
  if (!op) throw new Error(`${key} is not documented`);
  return op;
}

let h: Harness;
let doc: OpenApiDocument;
let raw: string;

beforeAll(async () => {
  h = await startHarness();
  const res = await h.anonymous.get<OpenApiDocument>("/openapi.json");
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^application\/json/);
  doc = res.body;
  raw = JSON.stringify(doc);
});
afterAll(() => h?.close());

describe("GET /openapi.json", () => {
  it("is a valid OpenAPI 3.1 document", async () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    const result = await new Validator().validate(JSON.parse(raw) as Record<string, unknown>);
    expect(result.errors, JSON.stringify(result.errors, null, 2)).toBeUndefined();
    expect(result.valid).toBe(true);
  });

  it("documents every path the app serves, the stream too, and nothing else", () => {
    // The app as the coordinator composes it: createApp with the operations router mounted.
    const knex = h.database.knex;
    const app = createApp({
      knex,
      committer: new Committer(knex),
      tokens: new TokenRegistry(
        {
          manager: [TOKENS.manager],
          registration: [TOKENS.registration],
          admin: [TOKENS.admin],
        },
        TOKENS.secret,
      ),
      accessKeys: h.coordinator.accessKeys,
      watch: new PropagationWatch(knex),
      logger: createLogger("error", true),
      heartbeatIntervalS: 10,
      accepting: () => true,
      extraRouters: [
        opsRouter({
          knex,
          tokens: h.coordinator.tokens,
          metrics: new Metrics(knex),
          instanceId: "walk",
          startedAt: new Date(),
          database: h.database.kind,
          publicStatus: false,
        }),
      ],
    });
    const stack = (app as unknown as { router: { stack: RouterLayer[] } }).router.stack;
    const served = servedOperations(stack);
    expect(served.length).toBeGreaterThan(10);
    expect(new Set(served).size, "an operation is routed twice").toBe(served.length);
    expect([...served, STREAM].sort()).toEqual(documentedOperations(doc).sort());
  });

  it("asks for a token exactly where the app does", async () => {
    const someId = "00000000-0000-4000-8000-000000000000";
    for (const key of documentedOperations(doc)) {
      if (key === STREAM) continue;
      const [method, path] = key.split(" ") as [string, string];
      const res = await h.anonymous.request(method.toUpperCase(), path.replace("{id}", someId));
      const open = (operation(doc, key).security ?? []).length === 0;
      if (open) expect(res.status, key).toBe(200);
      else expect(res.status, key).toBe(401);
    }
  });

  it("describes label maps and IP addresses so that what the app accepts fits", () => {
    // Labels and selectors are maps of any label; an object schema without properties that
    // forbids additional ones would document them as always empty.
    const emptyOnly: string[] = [];
    // The app takes IPv6 addresses too (and CIDR blocks in allowed_client_ips).
    const ipv4Only: string[] = [];
    const walk = (node: unknown, pointer: string, siblings: unknown[]) => {
      if (Array.isArray(node)) {
        node.forEach((item, i) => walk(item, `${pointer}/${i}`, node));
        return;
      }
      if (typeof node !== "object" || node === null) return;
      const schema = node as Record<string, unknown>;
      const types = ([] as unknown[]).concat(schema.type ?? []);
      if (
        types.includes("object") &&
        schema.additionalProperties === false &&
        Object.keys((schema.properties as object | undefined) ?? {}).length === 0 &&
        schema.patternProperties === undefined
      ) {
        emptyOnly.push(pointer);
      }
      const siblingFormats = siblings.map((s) => (s as { format?: unknown } | null)?.format);
      if (schema.format === "ipv4" && !siblingFormats.includes("ipv6")) ipv4Only.push(pointer);
      for (const [key, value] of Object.entries(schema)) walk(value, `${pointer}/${key}`, []);
    };
    walk(doc, "#", []);
    expect(emptyOnly).toEqual([]);
    expect(ipv4Only).toEqual([]);
  });

  it("documents an example for every request body, and each passes the app's own schema", () => {
    const withBody = documentedOperations(doc).filter((key) => operation(doc, key).requestBody);
    expect(withBody.sort()).toEqual(Object.keys(BODY_SCHEMAS).sort());
    for (const key of withBody) {
      const source = OPERATIONS.find((op) => `${op.method} ${op.path}` === key);
      expect(source?.body, `${key}: documented with the schema its router validates with`).toBe(
        BODY_SCHEMAS[key],
      );
      const example = operation(doc, key).requestBody?.content["application/json"]?.example;
      expect(example, `${key} has an example`).toBeDefined();
      expect(example).toEqual(source?.example);
      expect(() => validate(BODY_SCHEMAS[key]!.required(), example), key).not.toThrow();
    }
    expect(EXAMPLES.register).toBeDefined();
    expect(EXAMPLES.route).toBeDefined();
  });

  it("documents examples that a running coordinator accepts, and answers as documented", async () => {
    const answerSchema = (key: string, status: number) =>
      OPERATIONS.find((op) => `${op.method} ${op.path}` === key)?.responses[status]?.schema;
    const example = (key: string) =>
      operation(doc, key).requestBody!.content["application/json"]!.example;

    const registered = await h.registration.post<{ worker: { id: string }; token: string }>(
      "/workers/register",
      example("post /workers/register"),
    );
    expect(registered.status, JSON.stringify(registered.body)).toBe(201);
    expect(
      answerSchema("post /workers/register", 201)!.validate(registered.body).error,
    ).toBeUndefined();

    const route = await h.manager.post<{ id: string; version: number }>(
      "/routes",
      example("post /routes"),
    );
    expect(route.status, JSON.stringify(route.body)).toBe(201);
    expect(answerSchema("post /routes", 201)!.validate(route.body).error).toBeUndefined();

    const batch = await h.manager.post("/routes/batch", example("post /routes/batch"));
    expect(batch.status, JSON.stringify(batch.body)).toBe(201);
    expect(answerSchema("post /routes/batch", 201)!.validate(batch.body).error).toBeUndefined();

    const patched = await h.manager.patch(
      `/routes/${route.body.id}`,
      example("patch /routes/{id}"),
    );
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    expect(answerSchema("patch /routes/{id}", 200)!.validate(patched.body).error).toBeUndefined();

    // The documented stream path opens for the registered example worker.
    const streamPath = Object.keys(doc.paths).find((p) => p.endsWith("/stream"))!;
    const socket = new WebSocket(
      `${h.url.replace(/^http/, "ws")}${streamPath.replace("{id}", registered.body.worker.id)}`,
      { headers: { authorization: `Bearer ${registered.body.token}` } },
    );
    const closed = new Promise((resolve) => socket.once("close", resolve));
    const errors: Error[] = [];
    socket.on("error", (error) => errors.push(error));
    try {
      const frames: Array<{ type?: string }> = [];
      socket.on("message", (data) => frames.push(JSON.parse(String(data)) as { type?: string }));
      await waitFor(() => frames.length >= 2, 10_000, "hello and the table on the stream");
      expect(frames[0]?.type).toBe("hello");
      expect(errors).toEqual([]);
    } finally {
      if (socket.readyState === WebSocket.OPEN) socket.close(1000);
      else if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
      await closed;
    }
  });
});
