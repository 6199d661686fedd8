import { SignJWT, decodeJwt, type JSONWebKeySet } from "jose";
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AccessTokenVerifier } from "../../src/client/index.js";
import { NO_CIRCUIT } from "../../src/backendai/endpoint-service.js";
import { TOKENS, startHarness } from "../support/harness.js";
import { portWorker, registerWorker, type RouteAnswer } from "../support/factories.js";
import { BackendAiClient, endpointItem, expectProblem } from "./client.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

interface Replica {
  session_id: string;
  route_id: string;
  kernel_host: string;
  kernel_port: number;
}

let h: Harness;
let bai: BackendAiClient;

beforeAll(async () => {
  h = await startHarness({ BACKENDAI_PORT: "0", BACKENDAI_HOST: "127.0.0.1" });
  bai = new BackendAiClient(h.coordinator.backendaiUrl!);
  await registerWorker(h.registration, portWorker({ port_range: [12000, 12049] }));
});
afterAll(() => h?.close());

async function routingVersion(): Promise<number> {
  const res = await h.admin.get<{ routing: { version: number } }>("/status");
  return res.body.routing.version;
}

async function route(id: string): Promise<RouteAnswer> {
  const res = await h.manager.get<RouteAnswer>(`/routes/${id}`);
  expect(res.status).toBe(200);
  return res.body;
}

const ports = (r: RouteAnswer) => (r.upstreams as Array<{ port: number }>).map((u) => u.port);

const replica = (port: number): Replica => ({
  session_id: randomUUID(),
  route_id: randomUUID(),
  kernel_host: "10.0.1.5",
  kernel_port: port,
});

/** Calls `call` and checks that it took exactly `versions` routing versions. */
async function takes<T>(versions: number, call: () => Promise<T>): Promise<T> {
  const before = await routingVersion();
  const result = await call();
  expect(await routingVersion()).toBe(before + versions);
  return result;
}

describe("GET /status", () => {
  it("answers their status without a token", async () => {
    const res = await bai.as({}).get("/status", { Accept: "application/json" });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ api_version: "v2", advertise_address: null });
  });
});

describe("authentication", () => {
  it("takes the secret in X-BackendAI-Token (bare, Bearer, BackendAI) or an HS256 JWT", async () => {
    const jwt = await new SignJWT({ sub: "manager" })
      .setProtectedHeader({ alg: "HS256" })
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(TOKENS.backendai));
    const accepted: Array<Record<string, string>> = [
      { "X-BackendAI-Token": TOKENS.backendai },
      { "X-BackendAI-Token": `Bearer ${TOKENS.backendai}` },
      { "X-BackendAI-Token": `BackendAI ${TOKENS.backendai}` },
      { Authorization: `Bearer ${jwt}` },
    ];
    for (const headers of accepted) {
      const res = await bai.as(headers).delete("/v2/endpoints/bulk", { endpoints: [] });
      expect(res.status, JSON.stringify(headers)).toBe(200);
    }
    const forged = await new SignJWT({})
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("another-secret-0123456789"));
    const refused: Array<Record<string, string>> = [
      {},
      { "X-BackendAI-Token": "wrong" },
      { "X-BackendAI-Token": `${TOKENS.backendai}x` },
      { Authorization: `Bearer ${TOKENS.backendai}` },
      { Authorization: `Bearer ${forged}` },
      { Authorization: `Basic ${TOKENS.backendai}` },
    ];
    for (const headers of refused) {
      const res = await bai.as(headers).delete("/v2/endpoints/bulk", { endpoints: [] });
      const body = expectProblem(res, 401, "auth-failed");
      expect(body.error_code).toBe("agent_auth_unauthorized");
    }
  });

  it("refuses /v2/conf without the exact X-BackendAI-Token unless allowed", async () => {
    const conf = {
      login_session_token: null,
      kernel_host: "10.0.2.7",
      kernel_port: 8888,
      session: {
        id: randomUUID(),
        user_uuid: randomUUID(),
        group_id: randomUUID(),
        access_key: "AKIAEXAMPLE",
        domain_name: "default",
      },
    };
    expectProblem(await bai.as({}).post("/v2/conf", conf), 401, "auth-failed");
    const bearer = await bai
      .as({ "X-BackendAI-Token": `Bearer ${TOKENS.backendai}` })
      .post("/v2/conf", conf);
    expectProblem(bearer, 401, "auth-failed");
    const res = await bai.post("/v2/conf", conf);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body)).toEqual(["token"]);
    expect(res.body.token).toMatch(/^[0-9a-f-]{36}$/);
  });
});

describe("the Manager's endpoint calls, replayed", () => {
  const first = randomUUID();
  const second = randomUUID();
  const unknown = randomUUID();
  const replicas = [replica(8000), replica(8001)];
  let urls: string[] = [];

  it("provisions endpoints in one version, and the same url when called again", async () => {
    const body = {
      endpoints: [
        endpointItem(first),
        endpointItem(second, {
          endpoint_id: second,
          deployment_id: undefined,
          health_check: { path: "/v1/health", interval: 2.5, "max-wait-time": 4, "max-retries": 3 },
        }),
      ],
    };
    const res = await takes(1, () => bai.post("/v2/endpoints/bulk", body));
    expect(res.status).toBe(200);
    const items = res.body.endpoints as Array<Record<string, unknown>>;
    expect(items.map((i) => Object.keys(i).sort())).toEqual([
      ["deployment_id", "health_check_enabled", "url"],
      ["deployment_id", "health_check_enabled", "url"],
    ]);
    expect(items.map((i) => i.deployment_id)).toEqual([first, second]);
    expect(items.map((i) => i.health_check_enabled)).toEqual([false, true]);
    urls = items.map((i) => i.url as string);
    for (const url of urls) expect(url).toMatch(/^http:\/\/127\.0\.0\.1:120\d\d\/$/);

    const created = await route(second);
    expect(created).toMatchObject({
      id: second,
      endpoint_id: second,
      mode: "inference",
      protocol: "http",
      url: urls[1],
      health_check: { path: "/v1/health", interval_s: 3, max_wait_s: 4 },
      upstreams: [{ host: "192.0.2.1", port: 9, weight: 0 }],
      user_id: "6b0f5c1e-2a45-4e0e-8a55-0c7d2a1b3c4d",
      project_id: "2d0e1f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a",
    });

    const again = await takes(0, () => bai.post("/v2/endpoints/bulk", body));
    expect(again.body).toEqual(res.body);
  });

  it("replaces the replica list in one version, and not again when repeated", async () => {
    const body = {
      endpoints: [
        { deployment_id: first, routes: replicas },
        { deployment_id: unknown, routes: replicas },
      ],
    };
    const res = await takes(1, () => bai.post("/v2/endpoints/bulk/routes", body));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({
      endpoints: [
        { deployment_id: first, success: true, error: null },
        { deployment_id: unknown, success: false, error: NO_CIRCUIT },
      ],
    });
    expect((await route(first)).upstreams).toEqual([
      { host: "10.0.1.5", port: 8000, weight: 100 },
      { host: "10.0.1.5", port: 8001, weight: 100 },
    ]);
    await takes(0, () => bai.post("/v2/endpoints/bulk/routes", body));
  });

  it("registers replicas by route_id, naming those already registered", async () => {
    const added = replica(8002);
    const body = {
      endpoints: [
        { endpoint_id: first, routes: [...replicas, added] },
        { deployment_id: unknown, routes: [added] },
      ],
    };
    const res = await takes(1, () => bai.post("/v2/endpoints/bulk/routes/register", body));
    expect(res.body).toEqual({
      endpoints: [
        {
          deployment_id: first,
          success: true,
          error: null,
          registered_route_ids: [added.route_id],
          already_registered_route_ids: replicas.map((r) => r.route_id),
        },
        {
          deployment_id: unknown,
          success: false,
          error: NO_CIRCUIT,
          registered_route_ids: [],
          already_registered_route_ids: [],
        },
      ],
    });
    const twice = await takes(0, () => bai.post("/v2/endpoints/bulk/routes/register", body));
    const [entry] = twice.body.endpoints as Array<Record<string, unknown>>;
    expect(entry!.registered_route_ids).toEqual([]);
    expect(entry!.already_registered_route_ids).toEqual(
      [...replicas, added].map((r) => r.route_id),
    );
    expect(ports(await route(first))).toEqual([8000, 8001, 8002]);
  });

  it("unregisters replicas, naming those already absent", async () => {
    const absent = randomUUID();
    const body = {
      endpoints: [
        { deployment_id: first, route_ids: [replicas[0]!.route_id, absent] },
        { deployment_id: unknown, route_ids: [absent] },
      ],
    };
    const res = await takes(1, () => bai.post("/v2/endpoints/bulk/routes/unregister", body));
    expect(res.body).toEqual({
      endpoints: [
        {
          deployment_id: first,
          success: true,
          error: null,
          unregistered_route_ids: [replicas[0]!.route_id],
          already_absent_route_ids: [absent],
        },
        {
          deployment_id: unknown,
          success: false,
          error: NO_CIRCUIT,
          unregistered_route_ids: [],
          already_absent_route_ids: [],
        },
      ],
    });
    await takes(0, () => bai.post("/v2/endpoints/bulk/routes/unregister", body));
    expect(ports(await route(first))).toEqual([8001, 8002]);
  });

  it("keeps an endpoint replaced by no replica, serving nothing", async () => {
    const body = { endpoints: [{ deployment_id: second, routes: [] }] };
    const res = await takes(0, () => bai.post("/v2/endpoints/bulk/routes", body));
    expect(res.body).toEqual({
      endpoints: [{ deployment_id: second, success: true, error: null }],
    });
    expect((await route(second)).upstreams).toEqual([{ host: "192.0.2.1", port: 9, weight: 0 }]);
  });

  it("issues the endpoint's bearer token for an ISO or a unix exp", async () => {
    const jwks = (await h.anonymous.get<JSONWebKeySet>("/.well-known/jwks.json")).body;
    const verifier = new AccessTokenVerifier(jwks);
    const user = randomUUID();
    const inAnHour = Math.floor(Date.now() / 1000) + 3600;
    const iso = new Date(inAnHour * 1000).toISOString();
    // Their Manager sends microseconds and Z; any offset is valid.
    const forms = [
      iso.replace(".000Z", ".000123Z"),
      iso.replace(".000Z", ".000000-09:00"),
      inAnHour,
    ];
    const expected = [inAnHour, inAnHour + 9 * 3600, inAnHour];
    for (const [i, exp] of forms.entries()) {
      const res = await bai.post(`/v2/endpoints/${first}/token`, { user_uuid: user, exp });
      expect(res.status, String(exp)).toBe(200);
      expect(Object.keys(res.body)).toEqual(["token"]);
      const token = res.body.token as string;
      const check = await verifier.verify(token, first);
      expect(check.ok && check.permit).toMatchObject({ routeId: first, userId: user });
      expect(decodeJwt(token).exp).toBe(expected[i]);
    }
    const missing = await bai.post(`/v2/endpoints/${unknown}/token`, {
      user_uuid: user,
      exp: inAnHour,
    });
    expectProblem(missing, 404, "object-not-found");
  });

  it("updates an endpoint's health check, 404 for an id without one", async () => {
    const check = { health_check: { path: "/ready", interval: 5, max_wait_time: 2 } };
    const res = await takes(1, () => bai.put(`/v2/endpoints/${first}/health-check`, check));
    expect(res.body).toEqual({ success: true });
    expect((await route(first)).health_check).toEqual({
      path: "/ready",
      interval_s: 5,
      max_wait_s: 2,
    });
    await takes(0, () => bai.put(`/v2/endpoints/${first}/health-check`, check));
    await takes(1, () => bai.put(`/v2/endpoints/${first}/health-check`, { health_check: null }));
    expect((await route(first)).health_check).toBeNull();
    const missing = await bai.put(`/v2/endpoints/${unknown}/health-check`, check);
    expectProblem(missing, 404, "object-not-found");
  });

  it("deletes in bulk, an unknown id counting as success", async () => {
    const body = { endpoints: [{ deployment_id: second }, { endpoint_id: unknown }] };
    const res = await takes(1, () => bai.delete("/v2/endpoints/bulk", body));
    expect(res.body).toEqual({
      endpoints: [
        { deployment_id: second, success: true, error: null },
        { deployment_id: unknown, success: true, error: null },
      ],
    });
    expect((await h.manager.get(`/routes/${second}`)).status).toBe(404);
    await takes(0, () => bai.delete("/v2/endpoints/bulk", body));
  });

  it("puts a deployment back on its existing_url's worker and port", async () => {
    const res = await bai.post("/v2/endpoints/bulk", {
      endpoints: [
        endpointItem(second, {
          tags: {
            ...endpointItem(second).tags,
            endpoint: { id: second, runtime_variant: "vllm", existing_url: urls[1] },
          },
        }),
      ],
    });
    expect(res.status).toBe(200);
    expect((res.body.endpoints as Array<{ url: string }>)[0]!.url).toBe(urls[1]);
  });

  it("serves the older single-endpoint calls", async () => {
    const id = randomUUID();
    // The single form names the deployment in the path only.
    const item = endpointItem(id, { deployment_id: undefined, health_check: { path: "/h" } });
    const res = await takes(1, () => bai.post(`/v2/endpoints/${id}`, item));
    expect(res.status).toBe(200);
    expect(Object.keys(res.body).sort()).toEqual(["endpoint", "health_check_enabled", "success"]);
    expect(res.body).toMatchObject({ success: true, health_check_enabled: true });
    expect(res.body.endpoint).toBe((await route(id)).url);
    const again = await takes(0, () => bai.post(`/v2/endpoints/${id}`, item));
    expect(again.body).toEqual(res.body);
    expect((await takes(1, () => bai.delete(`/v2/endpoints/${id}`))).body).toEqual({
      success: true,
    });
    expect((await takes(0, () => bai.delete(`/v2/endpoints/${id}`))).body).toEqual({
      success: true,
    });
  });
});
