/**
 * Activity is traffic, not an open connection (docs/api.md, "Activity"): a WebSocket and a TCP
 * tunnel that stay open without moving a byte leave their routes' `last_activity_at` where it
 * was, so `GET /routes?inactive_since=…` finds them idle; the moment they move bytes again the
 * coordinator hears of it.
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { startHarness, waitFor } from "../support/harness.js";
import { startUpstreamApp, type UpstreamApp } from "./support.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";
import { createRoute } from "./support/routes.js";

interface RouteState {
  id: string;
  last_activity_at: string | null;
}

let h: Awaited<ReturnType<typeof startHarness>>;
let app: UpstreamApp;
let w: InProcessWorker;

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  app = await startUpstreamApp();
  w = await startInProcessWorker(h.url, { name: "w-idle" });
}, 60_000);

afterAll(async () => {
  await w?.close();
  await app?.close();
  await h?.close();
});

async function lastActivity(routeId: string): Promise<number | null> {
  const res = await h.manager.get<RouteState>(`/routes/${routeId}`);
  expect(res.status).toBe(200);
  return res.body.last_activity_at === null ? null : Date.parse(res.body.last_activity_at);
}

async function inactiveSince(at: number): Promise<string[]> {
  const since = new Date(at).toISOString();
  const res = await h.manager.get<{ items: RouteState[] }>(
    `/routes?worker_id=${w.workerId}&inactive_since=${encodeURIComponent(since)}`,
  );
  expect(res.status).toBe(200);
  return res.body.items.map((route) => route.id);
}

/** Sends `text` through the WebSocket and the TCP tunnel and checks that each echoes it. */
async function echoBoth(socket: WebSocket, tcp: net.Socket, text: string): Promise<void> {
  const message = new Promise<string>((resolve) =>
    socket.once("message", (data) => resolve(String(data))),
  );
  socket.send(text);
  expect(await message).toBe(text);
  const data = new Promise<string>((resolve) =>
    tcp.once("data", (chunk: Buffer) => resolve(String(chunk))),
  );
  tcp.write(text);
  expect(await data).toBe(text);
}

describe("activity of long-lived connections", () => {
  it("does not count an open silent tunnel as activity, and counts one that moves bytes", async () => {
    const [first] = w.portRange;
    const wsRoute = await createRoute(h.manager, w.workerId, first, app.httpPort);
    const tcpRoute = await createRoute(h.manager, w.workerId, first + 1, app.tcpPort, {
      protocol: "tcp",
      upstreams: [{ host: "127.0.0.1", port: app.tcpPort, weight: 1 }],
    });
    const witness = await createRoute(h.manager, w.workerId, first + 2, app.httpPort);

    const socket = new WebSocket(`ws://${w.host}:${first}/`, { perMessageDeflate: false });
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    const tcp = net.connect({ host: w.host, port: first + 1 });
    try {
      await echoBoth(socket, tcp, "hello");

      // From here on both tunnels stay open and silent.
      const quietFrom = Date.now() + 1;
      // The witness route's traffic, reported after the quiet began and past the worker's
      // once-a-second metering, shows that any report the silent tunnels caused has arrived too.
      await waitFor(
        async () => {
          await (await fetch(witness.url)).text();
          return ((await lastActivity(witness.id)) ?? 0) > quietFrom + 2500;
        },
        30_000,
        "the witness route's activity after the quiet began",
      );
      expect(socket.readyState).toBe(WebSocket.OPEN);
      expect(tcp.readyState).toBe("open");
      for (const route of [wsRoute, tcpRoute]) {
        const at = await lastActivity(route.id);
        expect(at === null || at < quietFrom, `${route.id} reported while silent`).toBe(true);
      }
      const idle = await inactiveSince(quietFrom);
      expect(idle).toEqual(expect.arrayContaining([wsRoute.id, tcpRoute.id]));
      expect(idle).not.toContain(witness.id);

      // Bytes through each tunnel are activity again.
      await echoBoth(socket, tcp, "again");
      for (const route of [wsRoute, tcpRoute]) {
        await waitFor(
          async () => ((await lastActivity(route.id)) ?? 0) > quietFrom,
          10_000,
          `activity of ${route.id} to reach the coordinator`,
        );
      }
      const stillIdle = await inactiveSince(quietFrom);
      expect(stillIdle).not.toContain(wsRoute.id);
      expect(stillIdle).not.toContain(tcpRoute.id);
    } finally {
      socket.terminate();
      tcp.destroy();
    }
  });
});
