import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness } from "../support/harness.js";
import { portWorker, registerWorker } from "../support/factories.js";
import { BackendAiClient, endpointItem, expectProblem } from "./client.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

let h: Harness;
let bai: BackendAiClient;
const known = randomUUID();
const session = randomUUID();
let confToken: string;

beforeAll(async () => {
  h = await startHarness({ BACKENDAI_PORT: "0", BACKENDAI_HOST: "127.0.0.1" });
  bai = new BackendAiClient(h.coordinator.backendaiUrl!);
  await registerWorker(h.registration, portWorker({ port_range: [12100, 12109] }));
  expect((await bai.post("/v2/endpoints/bulk", { endpoints: [endpointItem(known)] })).status).toBe(
    200,
  );
  const conf = await bai.post("/v2/conf", {
    login_session_token: null,
    kernel_host: "10.0.2.7",
    kernel_port: 8888,
    session: { id: session, user_uuid: null, group_id: null, access_key: "AK", domain_name: null },
  });
  confToken = conf.body.token as string;
});
afterAll(() => h?.close());

/** What a refused request must leave untouched: the routing version, the routes, the conf tokens. */
async function stored() {
  const status = await h.admin.get<{ routing: { version: number; routes: number } }>("/status");
  const tokens = await h.database
    .knex("backendai_conf_tokens")
    .count<Array<{ count: string }>>("* as count");
  const replicas = await h.database
    .knex("backendai_replicas")
    .count<Array<{ count: string }>>("* as count");
  return {
    ...status.body.routing,
    tokens: Number(tokens[0]!.count),
    replicas: Number(replicas[0]!.count),
  };
}

const replica = {
  session_id: randomUUID(),
  route_id: randomUUID(),
  kernel_host: "10.0.0.9",
  kernel_port: 80,
};
const conf = {
  login_session_token: null,
  kernel_host: "10.0.2.7",
  kernel_port: 8888,
  session: { id: session, user_uuid: null, group_id: null, access_key: "AK", domain_name: null },
};

/** [method, path, body, a field that must be named in data.errors] */
const CASES: Array<[string, string, unknown, string]> = [
  ["POST", "/v2/conf", { ...conf, kernel_port: 70000 }, "kernel_port"],
  ["POST", "/v2/conf", { ...conf, kernel_host: "not a host!" }, "kernel_host"],
  ["POST", "/v2/conf", { ...conf, session: { ...conf.session, id: null } }, "session.id"],
  [
    "POST",
    "/v2/conf",
    { ...conf, session: { ...conf.session, access_key: null } },
    "session.access_key",
  ],
  ["POST", "/v2/conf", { ...conf, login_session_token: undefined }, "login_session_token"],
  ["POST", "/v2/conf", { ...conf, kernel_host: "a\u0000b" }, "kernel_host"],
  ["POST", "/v2/endpoints/bulk", { endpoints: "x" }, "endpoints"],
  [
    "POST",
    "/v2/endpoints/bulk",
    { endpoints: [endpointItem("nope")] },
    "endpoints.0.deployment_id",
  ],
  [
    "POST",
    "/v2/endpoints/bulk",
    {
      endpoints: [endpointItem(randomUUID()), { ...endpointItem(randomUUID()), service_name: "" }],
    },
    "endpoints.1.service_name",
  ],
  [
    "POST",
    "/v2/endpoints/bulk",
    { endpoints: [endpointItem(randomUUID(), { health_check: { path: "no-slash" } })] },
    "endpoints.0.health_check.path",
  ],
  [
    "POST",
    "/v2/endpoints/bulk",
    { endpoints: [endpointItem(randomUUID(), { open_to_public: "maybe" })] },
    "endpoints.0.open_to_public",
  ],
  [
    "DELETE",
    "/v2/endpoints/bulk",
    { endpoints: [{ deployment_id: 7 }] },
    "endpoints.0.deployment_id",
  ],
  ["DELETE", "/v2/endpoints/bulk", {}, "endpoints"],
  [
    "POST",
    "/v2/endpoints/bulk/routes",
    { endpoints: [{ deployment_id: known, routes: [{ ...replica, kernel_port: 0 }] }] },
    "endpoints.0.routes.0.kernel_port",
  ],
  [
    "POST",
    "/v2/endpoints/bulk/routes",
    { endpoints: [{ deployment_id: known }] },
    "endpoints.0.routes",
  ],
  [
    "POST",
    "/v2/endpoints/bulk/routes/register",
    { endpoints: [{ deployment_id: known, routes: [{ ...replica, route_id: "r1" }] }] },
    "endpoints.0.routes.0.route_id",
  ],
  [
    "POST",
    "/v2/endpoints/bulk/routes/unregister",
    { endpoints: [{ deployment_id: known, route_ids: ["x"] }] },
    "endpoints.0.route_ids.0",
  ],
  ["POST", `/v2/endpoints/${known}/token`, { user_uuid: randomUUID(), exp: "tomorrow" }, "exp"],
  ["POST", `/v2/endpoints/${known}/token`, { exp: 4102444800 }, "user_uuid"],
  ["POST", `/v2/endpoints/${known}/token`, { user_uuid: randomUUID(), exp: 1000 }, "exp"],
  [
    "POST",
    "/v2/endpoints/not-a-uuid/token",
    { user_uuid: randomUUID(), exp: 4102444800 },
    "endpoint_id",
  ],
  ["PUT", `/v2/endpoints/${known}/health-check`, {}, "health_check"],
  [
    "PUT",
    `/v2/endpoints/${known}/health-check`,
    { health_check: { interval: -1 } },
    "health_check.interval",
  ],
  [
    "POST",
    `/v2/endpoints/${randomUUID()}`,
    { ...endpointItem(known), version: undefined },
    "version",
  ],
  ["GET", `/v2/proxy/${randomUUID()}/${session}/add?protocol=http`, undefined, "app"],
  ["GET", `/v2/proxy/${randomUUID()}/${session}/add?app=j&protocol=ftp`, undefined, "protocol"],
  ["GET", `/v2/proxy/auth?app=j&protocol=http&session_id=${session}`, undefined, "token"],
  ["GET", `/v2/proxy/auth?app=j&protocol=http&token=t&session_id=s`, undefined, "session_id"],
  [
    "GET",
    `/v2/proxy/auth?app=j&protocol=http&session_id=${session}&token=TOKEN&port=99999`,
    undefined,
    "port",
  ],
  [
    "GET",
    `/v2/proxy/auth?app=j&protocol=http&session_id=${session}&token=TOKEN&allowed_client_ips=10.0.0.0/99`,
    undefined,
    "allowed_client_ips.0",
  ],
];

describe("bad input on every path", () => {
  it("is their 400 naming the field, and stores nothing", async () => {
    const before = await stored();
    for (const [method, path, body, field] of CASES) {
      const res = await bai.request(method, path.replace("TOKEN", confToken), body);
      const problem = expectProblem(res, 400, "invalid-api-params");
      expect(problem.error_code).toBe("agent_request_invalid-parameters");
      expect(problem.data, `${method} ${path}: ${JSON.stringify(problem)}`).toBeDefined();
      const errors = (problem.data as { errors: Array<{ loc: unknown[]; msg: string }> }).errors;
      expect(
        errors.map((e) => e.loc.join(".")),
        `${method} ${path}`,
      ).toContain(field);
      for (const e of errors) expect(typeof e.msg).toBe("string");
    }
    expect(await stored()).toEqual(before);
  });

  it("answers a body that is not JSON with their Malformed body", async () => {
    const before = await stored();
    for (const path of ["/v2/conf", "/v2/endpoints/bulk", "/v2/endpoints/bulk/routes"]) {
      const res = await bai.request("POST", path, "{not json");
      expect(expectProblem(res, 400, "invalid-api-params").msg).toBe("Malformed body");
    }
    expect(await stored()).toEqual(before);
  });

  it("answers an unknown path with their 404", async () => {
    expectProblem(await bai.get("/v2/nothing"), 404, "url-not-found");
  });
});
