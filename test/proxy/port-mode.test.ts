import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startHarness, waitFor } from "../support/harness.js";
import {
  freePortRange,
  removeDir,
  spawnWorker,
  startUpstreamApp,
  tcpRoundTrip,
  waitReady,
  type UpstreamApp,
  type WorkerProcess,
} from "./support.js";

interface RouteAnswer {
  id: string;
  url: string;
  port: number;
  worker_id: string;
}

interface WorkerAnswer {
  id: string;
  name: string;
}

let h: Awaited<ReturnType<typeof startHarness>>;
let app: UpstreamApp;
const workers: WorkerProcess[] = [];
const ids: Record<string, string> = {};

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "2", HEARTBEAT_INTERVAL_S: "1" });
  app = await startUpstreamApp();
  const range = await freePortRange(["127.0.0.2", "127.0.0.3"], 4);
  for (const [name, host] of [
    ["w-a", "127.0.0.2"],
    ["w-b", "127.0.0.3"],
  ] as const) {
    workers.push(
      await spawnWorker({
        COORDINATOR_URL: h.url,
        WORKER_NAME: name,
        BIND_HOST: host,
        PORT_RANGE: `${range[0]}:${range[1]}`,
      }),
    );
  }
  await Promise.all(workers.map((worker) => waitReady(worker)));
  const listed = await h.admin.get<{ items: WorkerAnswer[] }>("/workers");
  for (const worker of listed.body.items) ids[worker.name] = worker.id;
}, 60_000);

afterAll(async () => {
  await Promise.all(workers.map((worker) => worker.kill()));
  for (const worker of workers) removeDir(worker.dataDir);
  await app?.close();
  await h?.close();
});

async function createRoute(body: Record<string, unknown>): Promise<RouteAnswer> {
  const answer = await h.manager.post<RouteAnswer>("/routes?wait=applied", {
    session_id: "s1",
    app: "jupyter",
    worker_id: ids["w-a"],
    open_to_public: true,
    ...body,
  });
  expect(answer.status).toBe(201);
  return answer.body;
}

describe("a proxy worker in port mode", () => {
  it("serves a route on the first request once its creation was applied", async () => {
    const route = await createRoute({
      upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
    });
    expect(route.url).toMatch(/^http:\/\/127\.0\.0\.2:\d+\/$/);
    const answer = await fetch(`${route.url}lab?x=1`);
    expect(answer.status).toBe(200);
    const body = (await answer.json()) as { url: string; headers: Record<string, string> };
    expect(body.url).toBe("/lab?x=1");
    expect(body.headers["x-forwarded-for"]).toBe("127.0.0.1");
    expect(body.headers["x-forwarded-proto"]).toBe("http");
    expect(body.headers["x-forwarded-host"]).toBe(new URL(route.url).host);
  });

  it("carries a WebSocket echo end to end", async () => {
    const route = await createRoute({
      upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
    });
    const socket = new WebSocket(`${route.url.replace("http:", "ws:")}echo`);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    const echoed = new Promise<string>((resolve) =>
      socket.once("message", (data) => resolve(String(data))),
    );
    socket.send("ping through the worker");
    expect(await echoed).toBe("ping through the worker");
    socket.close();
  });

  it("carries a TCP route's bytes both ways", async () => {
    const route = await createRoute({
      protocol: "tcp",
      upstreams: [{ host: "127.0.0.1", port: app.tcpPort, weight: 1 }],
    });
    expect(route.url).toMatch(/^tcp:\/\//);
    const payload = Buffer.from("SSH-2.0-test\r\n".repeat(1000));
    const back = await tcpRoundTrip("127.0.0.2", route.port, payload);
    expect(back.equals(payload)).toBe(true);
  });

  it("answers 404 problem+json for a deleted route", async () => {
    const route = await createRoute({
      upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
    });
    expect((await fetch(route.url)).status).toBe(200);
    const deleted = await h.manager.delete(`/routes/${route.id}?wait=applied`);
    expect(deleted.status).toBe(204);
    const answer = await fetch(route.url);
    expect(answer.status).toBe(404);
    expect(answer.headers.get("content-type")).toBe("application/problem+json");
  });

  it("serves a route on the same port of the other worker after its worker is killed, with the same token", async () => {
    const route = await createRoute({
      open_to_public: false,
      upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
    });
    const issued = await h.manager.post<{ token: string }>(`/routes/${route.id}/tokens`, {});
    expect(issued.status).toBe(201);
    const bearer = { authorization: `Bearer ${issued.body.token}` };
    expect((await fetch(route.url)).status).toBe(401);
    expect((await fetch(route.url, { headers: bearer })).status).toBe(200);
    await workers[0]?.kill();
    const moved = await waitFor(
      async () => {
        const answer = await h.manager.get<RouteAnswer>(`/routes/${route.id}`);
        return answer.body.worker_id === ids["w-b"] ? answer.body : undefined;
      },
      20_000,
      "the route to fail over",
    );
    if (moved === undefined) throw new Error("the route did not move");
    expect(moved.port).toBe(route.port);
    expect(moved.url).toBe(`http://127.0.0.3:${route.port}/`);
    const served = await waitFor(
      async () => {
        const answer = await fetch(moved.url, { headers: bearer });
        return answer.status === 200 ? answer : undefined;
      },
      10_000,
      "the other worker to serve the route",
    );
    expect(served?.headers.get("x-app")).toBe("app");
    expect((await fetch(moved.url)).status).toBe(401);
  });
});
