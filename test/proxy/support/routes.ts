/** Routes to the echo app on proxy workers, through the Manager's API. */
import { expect } from "vitest";
import { routeBody, type RouteAnswer } from "../../support/factories.js";
import { waitFor, type Api } from "../../support/harness.js";

/** The id the coordinator gave the worker registered as `name` (polled until it registered). */
export async function workerIdOf(manager: Api, name: string): Promise<string> {
  return waitFor<string | undefined>(
    async () => {
      const res = await manager.get<{ items: Array<{ id: string; name: string }> }>("/workers");
      return res.body.items.find((w) => w.name === name)?.id;
    },
    30_000,
    `worker ${name} to register`,
  ) as Promise<string>;
}

/** A route made of `body` (routeBody's defaults), answered once its worker serves it. */
export async function createAppliedRoute(
  manager: Api,
  body: Record<string, unknown>,
): Promise<RouteAnswer> {
  const res = await manager.post<RouteAnswer>("/routes?wait=applied", routeBody(body));
  expect(res.status, JSON.stringify(res.body)).toBe(201);
  return res.body;
}

/**
 * An HTTP route on `port` of the worker to the app at `appPort`, answered once the worker serves
 * it (wait=applied). Open to the public unless `overrides` say otherwise.
 */
export async function createRoute(
  manager: Api,
  workerId: string,
  port: number,
  appPort: number,
  overrides: Record<string, unknown> = {},
): Promise<RouteAnswer> {
  return createAppliedRoute(manager, {
    worker_id: workerId,
    port,
    upstreams: [{ host: "127.0.0.1", port: appPort, weight: 1 }],
    open_to_public: true,
    ...overrides,
  });
}
