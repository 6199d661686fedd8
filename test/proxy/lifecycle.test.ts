import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startHarness, startInstance, waitFor, type TestInstance } from "../support/harness.js";
import {
  freePortRange,
  removeDir,
  spawnWorker,
  startUpstreamApp,
  waitReady,
  type UpstreamApp,
} from "./support.js";
import { startInProcessWorker } from "./support/in-process-worker.js";
import { createAppliedRoute } from "./support/routes.js";
import type { RouteAnswer } from "../support/factories.js";

type LifecycleRoute = RouteAnswer & { last_activity_at: string | null };

let h: Awaited<ReturnType<typeof startHarness>>;
let app: UpstreamApp;
const dirs: string[] = [];

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  app = await startUpstreamApp();
}, 60_000);

afterAll(async () => {
  await app?.close();
  await h?.close();
  for (const dir of dirs) removeDir(dir);
});

function tempDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "appproxy-lifecycle-"));
  dirs.push(dir);
  return dir;
}

async function createRoute(
  api: TestInstance,
  workerId: string | undefined,
): Promise<LifecycleRoute> {
  return (await createAppliedRoute(api.manager, {
    open_to_public: true,
    worker_id: workerId,
    upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
  })) as LifecycleRoute;
}

async function openSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url.replace("http:", "ws:"));
  await new Promise((resolve, reject) => {
    socket.once("open", resolve);
    socket.once("error", reject);
  });
  return socket;
}

async function echo(socket: WebSocket, text: string): Promise<string> {
  const answer = new Promise<string>((resolve) =>
    socket.once("message", (data) => resolve(String(data))),
  );
  socket.send(text);
  return answer;
}

describe("a worker while its table changes", () => {
  it("closes a deleted route's WebSocket within DRAIN_S and leaves the others alone", async () => {
    const worker = await startInProcessWorker(h.url, { name: "w-drain", host: "127.0.0.6" });
    try {
      const workerId = worker.workerId;
      const doomed = await createRoute(h, workerId);
      const kept = await createRoute(h, workerId);
      const doomedSocket = await openSocket(doomed.url);
      const keptSocket = await openSocket(kept.url);
      const closed = new Promise<void>((resolve) => doomedSocket.once("close", () => resolve()));
      expect((await h.manager.delete(`/routes/${doomed.id}?wait=applied`)).status).toBe(204);
      expect((await fetch(doomed.url)).status).toBe(404);
      await closed;
      expect(keptSocket.readyState).toBe(WebSocket.OPEN);
      expect(await echo(keptSocket, "untouched")).toBe("untouched");
      keptSocket.close();
    } finally {
      await worker.close();
    }
  });

  it("reports routes that moved bytes as activity", async () => {
    const worker = await startInProcessWorker(h.url, { name: "w-activity", host: "127.0.0.7" });
    try {
      const route = await createRoute(h, worker.workerId);
      expect(route.last_activity_at).toBeNull();
      expect((await fetch(route.url)).status).toBe(200);
      await waitFor(
        async () =>
          (await h.manager.get<LifecycleRoute>(`/routes/${route.id}`)).body.last_activity_at,
        10_000,
        "the route's activity to reach the coordinator",
      );
    } finally {
      await worker.close();
    }
  });
});

describe("a worker process across restarts", () => {
  it("serves its kept table at once while no coordinator answers, then resumes its stream", async () => {
    const dataDir = tempDir();
    const range = await freePortRange(["127.0.0.8"], 4);
    const coordinator = await startInstance(h.database);
    const coordinatorPort = Number(new URL(coordinator.url).port);
    const env = {
      COORDINATOR_URL: coordinator.url,
      WORKER_NAME: "w-restart",
      BIND_HOST: "127.0.0.8",
      PORT_RANGE: `${range[0]}:${range[1]}`,
    };
    const first = await spawnWorker(env, { dataDir });
    await waitReady(first);
    const workers = await h.admin.get<{ items: { id: string; name: string }[] }>("/workers");
    const workerId = workers.body.items.find((item) => item.name === "w-restart")?.id;
    const route = await createRoute(h, workerId);
    expect((await fetch(route.url)).status).toBe(200);
    expect(await first.stop()).toBe(0);
    await coordinator.stop();

    const second = await spawnWorker(env, { dataDir });
    let again: TestInstance | undefined;
    try {
      const ready = await waitReady(second);
      expect(ready.coordinator).toBe("disconnected");
      expect((await fetch(route.url)).status).toBe(200);

      again = await startInstance(h.database, { PORT: String(coordinatorPort) });
      await waitFor(
        async () => {
          const answer = await fetch(`${second.opsUrl}/readyz`);
          return ((await answer.json()) as { coordinator: string }).coordinator === "connected";
        },
        30_000,
        "the worker to reach the coordinator again",
      );
      const later = await createRoute(h, workerId);
      expect((await fetch(later.url)).status).toBe(200);
      const listed = await h.admin.get<{ items: { id: string }[] }>("/workers");
      expect(listed.body.items.filter((item) => item.id === workerId)).toHaveLength(1);
    } finally {
      await second.kill();
      await again?.stop();
    }
  }, 90_000);
});
