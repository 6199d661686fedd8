import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { AccessTokenIssuer } from "../../src/access/issuer.js";
import type { RouteAnswer } from "../support/factories.js";
import { startHarness } from "../support/harness.js";
import { startUpstreamApp, type UpstreamApp } from "./support.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";
import { createAppliedRoute } from "./support/routes.js";

interface TokenAnswer {
  token: string;
  expires_at: string;
  setup_url: string;
}

const HOST = "127.0.0.4";
let h: Awaited<ReturnType<typeof startHarness>>;
let app: UpstreamApp;
let w: InProcessWorker;

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  app = await startUpstreamApp();
  w = await startInProcessWorker(h.url, { name: "w-access", host: HOST, ports: 16 });
}, 60_000);

afterAll(async () => {
  await w?.close();
  await app?.close();
  await h?.close();
});

function createRoute(body: Record<string, unknown> = {}): Promise<RouteAnswer> {
  return createAppliedRoute(h.manager, {
    upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
    ...body,
  });
}

async function issueToken(routeId: string): Promise<TokenAnswer> {
  const answer = await h.manager.post<TokenAnswer>(`/routes/${routeId}/tokens`, { user_id: "u1" });
  expect(answer.status).toBe(201);
  return answer.body;
}

/** The permit cookie a setup answer set, as `name=value`. */
function permitOf(answer: Response): string {
  const cookie = answer.headers.get("set-cookie") ?? "";
  return cookie.split(";")[0] ?? "";
}

describe("access to a route through the worker", () => {
  it("needs a token: 401 without one, for requests and WebSocket upgrades", async () => {
    const route = await createRoute();
    const answer = await fetch(route.url);
    expect(answer.status).toBe(401);
    expect(answer.headers.get("content-type")).toBe("application/problem+json");
    const upgrade = await new Promise<number>((resolve, reject) => {
      const socket = new WebSocket(route.url.replace("http:", "ws:"));
      socket.once("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
      socket.once("open", () => reject(new Error("upgrade accepted without a token")));
      socket.once("error", () => undefined);
    });
    expect(upgrade).toBe(401);
  });

  it("turns a good token into a permit cookie the upstream never sees", async () => {
    const route = await createRoute();
    const { setup_url, expires_at } = await issueToken(route.id);
    const setup = await fetch(`${setup_url}&redirect=${encodeURIComponent("/lab?reset")}`, {
      redirect: "manual",
    });
    expect(setup.status).toBe(302);
    expect(setup.headers.get("location")).toBe("/lab?reset");
    const cookie = setup.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^appproxy_permit_[0-9a-f]{16}=/);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Lax");
    expect(cookie).toContain("Path=/");
    expect(cookie).not.toContain("Secure");
    expect(cookie).toContain(`Expires=${new Date(expires_at).toUTCString()}`);

    const seenBefore = app.seen.length;
    const answer = await fetch(`${route.url}lab`, {
      headers: { cookie: `theme=dark; ${permitOf(setup)}; _xsrf=abc` },
    });
    expect(answer.status).toBe(200);
    const upstreamHeaders = app.seen[seenBefore];
    expect(upstreamHeaders?.cookie).toBe("theme=dark; _xsrf=abc");

    const socket = new WebSocket(route.url.replace("http:", "ws:"), {
      headers: { cookie: permitOf(setup) },
    });
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    expect(app.seen.at(-1)?.cookie).toBeUndefined();
    socket.close();
  });

  it("takes a bearer token, and keeps it from the upstream", async () => {
    const route = await createRoute();
    const { token } = await issueToken(route.id);
    const seenBefore = app.seen.length;
    const answer = await fetch(route.url, { headers: { authorization: `Bearer ${token}` } });
    expect(answer.status).toBe(200);
    expect(app.seen[seenBefore]?.authorization).toBeUndefined();
  });

  it("refuses another route's token at setup and as a bearer, setting no cookie", async () => {
    const route = await createRoute();
    const other = await createRoute();
    const { token } = await issueToken(other.id);
    const setup = await fetch(`${route.url}_appproxy/setup?token=${token}`, { redirect: "manual" });
    expect(setup.status).toBe(401);
    expect(setup.headers.get("set-cookie")).toBeNull();
    const answer = await fetch(route.url, { headers: { authorization: `Bearer ${token}` } });
    expect(answer.status).toBe(401);
  });

  it("refuses an expired token", async () => {
    const route = await createRoute();
    const issuer = new AccessTokenIssuer(h.coordinator.accessKeys);
    const expired = await issuer.issue(route.id, "u1", 60, new Date(Date.now() - 3_600_000));
    const setup = await fetch(`${route.url}_appproxy/setup?token=${expired.token}`, {
      redirect: "manual",
    });
    expect(setup.status).toBe(401);
    expect(setup.headers.get("set-cookie")).toBeNull();
    const answer = await fetch(route.url, {
      headers: { authorization: `Bearer ${expired.token}` },
    });
    expect(answer.status).toBe(401);
  });

  it("refuses a setup redirect that leaves the route", async () => {
    const route = await createRoute();
    const { setup_url } = await issueToken(route.id);
    const setup = await fetch(`${setup_url}&redirect=${encodeURIComponent("//evil.test/")}`, {
      redirect: "manual",
    });
    expect(setup.status).toBe(400);
    expect(setup.headers.get("set-cookie")).toBeNull();
  });

  it("answers 403 to a client outside allowed_client_ips, even with a good token", async () => {
    const route = await createRoute({ allowed_client_ips: ["10.0.0.0/8"], open_to_public: true });
    const { token } = await issueToken(route.id);
    const answer = await fetch(route.url, { headers: { authorization: `Bearer ${token}` } });
    expect(answer.status).toBe(403);
  });

  it("serves an open_to_public route to a client inside allowed_client_ips without a token", async () => {
    const route = await createRoute({ allowed_client_ips: ["127.0.0.0/8"], open_to_public: true });
    expect((await fetch(route.url)).status).toBe(200);
  });

  it("counts refusals by reason on /metrics", async () => {
    const { port, address } = w.worker.addresses.ops;
    const metrics = await (await fetch(`http://${address}:${port}/metrics`)).text();
    expect(metrics).toMatch(/appproxy_worker_access_denied_total\{reason="missing_token"\} [1-9]/);
    expect(metrics).toMatch(/appproxy_worker_access_denied_total\{reason="client_ip"\} [1-9]/);
    expect(metrics).toMatch(
      /appproxy_worker_requests_total\{protocol="http",code_class="2xx"\} [1-9]/,
    );
  });
});
