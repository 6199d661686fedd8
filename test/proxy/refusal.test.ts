/**
 * What the coordinator sends, the worker checks before serving it (docs/worker.md): a route it
 * cannot serve safely is refused with a `nack` naming it while the rest of the version is served,
 * and a later version without it is acknowledged. Driven through a fake coordinator, since the
 * real one never places such a route; the check runs on the serving thread, the nack is sent by
 * the control thread.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tableDigest, type Route } from "../../src/client/index.js";
import { FakeCoordinator } from "../client/fake-coordinator.js";
import { makeRoute } from "../client/route-factory.js";
import { waitFor } from "../support/harness.js";
import { startUpstreamApp, type UpstreamApp } from "./support.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";

let fake: FakeCoordinator;
let app: UpstreamApp;
let w: InProcessWorker;

beforeAll(async () => {
  fake = await FakeCoordinator.start();
  app = await startUpstreamApp();
  w = await startInProcessWorker(fake.url, { name: "w-refuse" });
}, 60_000);

afterAll(async () => {
  await w?.close();
  await app?.close();
  await fake?.close();
});

function route(overrides: Partial<Route>): Route {
  return makeRoute({
    open_to_public: true,
    upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
    ...overrides,
  });
}

describe("routes the worker cannot serve", () => {
  it("are refused by name in a nack while the rest is served, then acknowledged away", async () => {
    const stream = fake.lastStream!;
    const good = route({ port: w.portRange[0], version: 1 });
    const outside = route({ port: w.portRange[1] + 1000, version: 1 });
    const routes = [good, outside];
    stream.send({ type: "snapshot", version: 1, routes, digest: tableDigest(routes) });

    await waitFor(() => stream.framesOfType("nack").length > 0, 20_000, "a nack of version 1");
    const nacks = stream.framesOfType("nack");
    expect(nacks[0]).toMatchObject({ type: "nack", version: 1 });
    expect(String(nacks[0]!.error)).toContain(outside.id);
    expect(String(nacks[0]!.error)).not.toContain(good.id);
    expect(stream.framesOfType("ack")).toEqual([]);
    expect((await fetch(`http://${w.host}:${w.portRange[0]}/`)).status).toBe(200);

    const kept = [good];
    stream.send({
      type: "diff",
      from: 1,
      to: 2,
      upserts: [],
      deletes: [outside.id],
      digest: tableDigest(kept),
    });
    await waitFor(() => stream.framesOfType("ack").length > 0, 20_000, "an ack of version 2");
    expect(stream.framesOfType("ack")).toEqual([
      { type: "ack", version: 2, digest: tableDigest(kept) },
    ]);
    expect(w.worker.status()).toMatchObject({ version: 2, routes: 1 });
  });
});
