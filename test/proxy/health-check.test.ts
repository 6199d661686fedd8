/**
 * `health_check` of an inference route (docs/api.md, "Upstreams"): the worker probes each
 * upstream's health path every `interval_s`; an upstream whose probe fails (an error status, or
 * no answer within `max_wait_s`) takes no requests until a probe passes again, although it still
 * answers requests itself.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, waitFor } from "../support/harness.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";
import { createRoute } from "./support/routes.js";

type Health = "passing" | "failing" | "hanging";

/** A model replica: `GET /health` answers as told; anything else answers its name. */
interface Replica {
  readonly name: string;
  readonly port: number;
  health: Health;
  close(): Promise<void>;
}

async function startReplica(name: string): Promise<Replica> {
  const server = http.createServer((req, res) => {
    if (req.url === "/health") {
      if (replica.health === "hanging") return;
      res.writeHead(replica.health === "passing" ? 200 : 503).end();
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" }).end(name);
  });
  const replica: Replica = {
    name,
    port: 0,
    health: "passing",
    close: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  (replica as { port: number }).port = (server.address() as AddressInfo).port;
  return replica;
}

let h: Awaited<ReturnType<typeof startHarness>>;
let w: InProcessWorker;
const replicas: Replica[] = [];

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  replicas.push(await startReplica("a"), await startReplica("b"));
  w = await startInProcessWorker(h.url, { name: "w-health" });
}, 60_000);

afterAll(async () => {
  await w?.close();
  for (const replica of replicas) await replica.close();
  await h?.close();
});

/** The replicas that answered `count` requests in a row through the worker, in order. */
async function answers(url: string, count: number): Promise<string[]> {
  const names: string[] = [];
  for (let i = 0; i < count; i += 1) {
    const res = await fetch(url);
    expect(res.status).toBe(200);
    names.push(await res.text());
  }
  return names;
}

describe("health checks of an inference route", () => {
  it("takes an upstream whose health path fails out of rotation until it passes again", async () => {
    const [a, b] = replicas as [Replica, Replica];
    const route = await createRoute(h.manager, w.workerId, w.portRange[0], a.port, {
      mode: "inference",
      upstreams: [
        { host: "127.0.0.1", port: a.port, weight: 1 },
        { host: "127.0.0.1", port: b.port, weight: 1 },
      ],
      health_check: { path: "/health", interval_s: 1, max_wait_s: 1 },
    });
    // Round robin over two healthy replicas: both answer.
    expect(new Set(await answers(route.url, 4))).toEqual(new Set(["a", "b"]));

    for (const failure of ["failing", "hanging"] as const) {
      a.health = failure;
      // Six answers in a row from b cannot happen while a is in the rotation (1:1 round robin).
      await waitFor(
        async () => (await answers(route.url, 6)).every((name) => name === "b"),
        20_000,
        `a (${failure}) to leave the rotation`,
      );
      expect(new Set(await answers(route.url, 10)), `a is ${failure}`).toEqual(new Set(["b"]));

      a.health = "passing";
      await waitFor(
        async () => (await answers(route.url, 2)).includes("a"),
        20_000,
        `a to come back after ${failure}`,
      );
      expect(new Set(await answers(route.url, 4))).toEqual(new Set(["a", "b"]));
    }
  });
});
