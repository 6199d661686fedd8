import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, startInstance, waitFor } from "../support/harness.js";
import {
  freePortRange,
  removeDir,
  spawnWorker,
  startUpstreamApp,
  waitReady,
  type UpstreamApp,
  type WorkerProcess,
} from "../proxy/support.js";
import { BackendAiClient, endpointItem, expectProblem } from "./client.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

const ENV = {
  BACKENDAI_PORT: "0",
  BACKENDAI_HOST: "127.0.0.1",
  BACKENDAI_ALLOW_UNAUTHENTICATED_CONF: "true",
};

let h: Harness;
let bai: BackendAiClient;
let browser: BackendAiClient;
let app: UpstreamApp;
let worker: WorkerProcess;
const session = randomUUID();
let confToken: string;

beforeAll(async () => {
  h = await startHarness(ENV);
  bai = new BackendAiClient(h.coordinator.backendaiUrl!);
  browser = bai.as({});
  app = await startUpstreamApp("jupyter");
  const range = await freePortRange(["127.0.0.2"], 6);
  worker = await spawnWorker({
    COORDINATOR_URL: h.url,
    WORKER_NAME: "bai-w",
    BIND_HOST: "127.0.0.2",
    PORT_RANGE: `${range[0]}:${range[1]}`,
  });
  await waitReady(worker);
}, 60_000);

afterAll(async () => {
  await worker?.kill();
  if (worker) removeDir(worker.dataDir);
  await app?.close();
  await h?.close();
});

/** The app's answer as the worker relays it: which path it saw, and the headers it got. */
interface AppAnswer {
  app: string;
  url: string;
  headers: Record<string, string>;
}

describe("opening an app from the browser", () => {
  it("goes from /v2/conf without a token to the app, through the worker's setup path", async () => {
    const conf = await browser.post("/v2/conf", {
      login_session_token: null,
      kernel_host: "127.0.0.1",
      kernel_port: app.httpPort,
      session: {
        id: session,
        user_uuid: randomUUID(),
        group_id: randomUUID(),
        access_key: "AKIAEXAMPLE",
        domain_name: "default",
      },
    });
    expect(conf.status).toBe(200);
    confToken = conf.body.token as string;

    const add = await browser.get(
      `/v2/proxy/${confToken}/${session}/add?app=jupyter&protocol=http&redirect=%2Flab%3Fx%3D1`,
    );
    expect(add.status).toBe(200);
    expect(add.headers.get("access-control-allow-origin")).toBe("*");
    expect(Object.keys(add.body).sort()).toEqual(["code", "url"]);
    expect(add.body.code).toBe(200);
    const authUrl = new URL(add.body.url as string);
    expect(`${authUrl.origin}${authUrl.pathname}`).toBe(`${bai.baseUrl}/v2/proxy/auth`);
    expect(authUrl.searchParams.get("token")).toBe(confToken);
    expect(authUrl.searchParams.get("session_id")).toBe(session);

    const auth = await browser.get(`${authUrl.pathname}${authUrl.search}`, {
      Accept: "application/json",
    });
    expect(auth.status).toBe(200);
    expect(Object.keys(auth.body).sort()).toEqual(["redirect_url", "reuse"]);
    expect(auth.body.reuse).toBe(false);
    const listed = await h.manager.get<{
      items: Array<{ id: string; url: string; protocol: string }>;
    }>(`/routes?session_id=${session}`);
    expect(listed.body.items).toHaveLength(1);
    const [route] = listed.body.items;
    const redirectUrl = auth.body.redirect_url as string;
    expect(redirectUrl.startsWith(`${route!.url}_appproxy/setup?token=`)).toBe(true);

    // The browser opens redirect_url: the worker sets the permit cookie and sends it to /lab.
    const setup = await fetch(redirectUrl, { redirect: "manual" });
    expect(setup.status).toBe(302);
    expect(setup.headers.get("location")).toBe("/lab?x=1");
    const cookie = setup.headers.get("set-cookie")!.split(";")[0]!;
    const page = await fetch(new URL("/lab?x=1", route!.url), { headers: { cookie } });
    expect(page.status).toBe(200);
    const seen = (await page.json()) as AppAnswer;
    expect(seen.url).toBe("/lab?x=1");
    expect(seen.headers.cookie ?? "").not.toContain(cookie.split("=")[0]!);
    expect((await fetch(route!.url)).status).toBe(401);

    // Again, without asking for JSON: a 308 to a setup URL of the same route, reused.
    const again = await browser.request(
      "GET",
      `${authUrl.pathname}${authUrl.search}`,
      undefined,
      {},
      "manual",
    );
    expect(again.status).toBe(308);
    expect(again.headers.get("location")!.startsWith(`${route!.url}_appproxy/setup?token=`)).toBe(
      true,
    );
    expect(
      (await h.manager.get<{ items: unknown[] }>(`/routes?session_id=${session}`)).body.items,
    ).toHaveLength(1);
  });

  it("refuses another session's id (401) and an unknown token (404)", async () => {
    const query = "app=jupyter&protocol=http";
    const other = await browser.get(
      `/v2/proxy/auth?${query}&token=${confToken}&session_id=${randomUUID()}`,
      { Accept: "application/json" },
    );
    expectProblem(other, 401, "invalid-credentials");
    const unknown = await browser.get(
      `/v2/proxy/auth?${query}&token=${randomUUID()}&session_id=${session}`,
      { Accept: "application/json" },
    );
    expectProblem(unknown, 404, "object-not-found");
  });

  it("makes a new route with no_reuse, and 409 for a port already taken", async () => {
    const base = `/v2/proxy/auth?app=jupyter&protocol=preopen&token=${confToken}&session_id=${session}`;
    const fresh = await browser.get(`${base}&no_reuse=true`, { Accept: "application/json" });
    expect(fresh.status).toBe(200);
    expect(fresh.body.reuse).toBe(false);
    const routes = await h.manager.get<{ items: Array<{ port: number }> }>(
      `/routes?session_id=${session}`,
    );
    expect(routes.body.items).toHaveLength(2);
    const taken = routes.body.items[0]!.port;
    const clash = await browser.get(`${base}&no_reuse=true&port=${taken}`, {
      Accept: "application/json",
    });
    expectProblem(clash, 409, "appproxy/port-not-available");
  });

  it("serves vnc as a tcp route whose address is the redirect, never reused", async () => {
    const base = `/v2/proxy/auth?app=vnc&protocol=vnc&token=${confToken}&session_id=${session}`;
    for (let i = 0; i < 2; i += 1) {
      const res = await browser.get(base, { Accept: "application/json" });
      expect(res.status).toBe(200);
      expect(res.body.redirect_url).toMatch(/^tcp:\/\/127\.0\.0\.2:\d+$/);
      expect(res.body.reuse).toBe(false);
    }
  });

  it("keeps conf tokens across a restart of the coordinator", async () => {
    const second = await startInstance(h.database, ENV);
    try {
      const res = await new BackendAiClient(second.coordinator.backendaiUrl!, {}).get(
        `/v2/proxy/auth?app=jupyter&protocol=http&token=${confToken}&session_id=${session}`,
        { Accept: "application/json" },
      );
      expect(res.status).toBe(200);
      expect(res.body.reuse).toBe(true);
    } finally {
      await second.stop();
    }
  });
});

describe("an inference endpoint through the worker", () => {
  it("takes the endpoint token as the bearer and spreads requests by traffic_ratio", async () => {
    const apps = [await startUpstreamApp("r1"), await startUpstreamApp("r2")];
    try {
      const deployment = randomUUID();
      const created = await bai.post("/v2/endpoints/bulk", {
        endpoints: [endpointItem(deployment)],
      });
      const url = (created.body.endpoints as Array<{ url: string }>)[0]!.url;
      const replicas = apps.map((a, i) => ({
        session_id: randomUUID(),
        route_id: randomUUID(),
        kernel_host: "127.0.0.1",
        kernel_port: a.httpPort,
        traffic_ratio: i === 0 ? 3 : 1,
      }));
      const synced = await bai.post("/v2/endpoints/bulk/routes", {
        endpoints: [{ deployment_id: deployment, routes: replicas }],
      });
      expect(synced.status).toBe(200);
      const version = Number(synced.headers.get("x-routing-version"));
      const token = (
        await bai.post(`/v2/endpoints/${deployment}/token`, {
          user_uuid: randomUUID(),
          exp: Math.floor(Date.now() / 1000) + 600,
        })
      ).body.token as string;

      await waitForVersion(version);
      expect((await fetch(url)).status).toBe(401);
      const counts: Record<string, number> = { r1: 0, r2: 0 };
      for (let i = 0; i < 40; i += 1) {
        const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
        expect(res.status).toBe(200);
        const seen = (await res.json()) as AppAnswer;
        expect(seen.headers.authorization).toBeUndefined();
        counts[seen.app]! += 1;
      }
      // Smooth weighted round robin: exactly 3 to 1 over whole rounds.
      expect(counts).toEqual({ r1: 30, r2: 10 });
    } finally {
      for (const a of apps) await a.close();
    }
  });
});

/** Polls the worker's readiness body until it holds `version`. */
async function waitForVersion(version: number): Promise<void> {
  await waitFor(
    async () => {
      const body = (await (await fetch(`${worker.opsUrl}/readyz`)).json()) as { version: number };
      return body.version >= version;
    },
    10_000,
    `the worker to reach version ${version}`,
  );
}
