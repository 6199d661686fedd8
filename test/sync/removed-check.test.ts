import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { missingWorkers } from "../../src/sync/changelog.js";
import { startHarness } from "../support/harness.js";
import { portWorker, registerWorker } from "../support/factories.js";

let harness: Awaited<ReturnType<typeof startHarness>>;

beforeAll(async () => {
  harness = await startHarness();
});
afterAll(async () => {
  await harness?.close();
});

describe("the hub's check for removed workers", () => {
  it("names exactly the workers that are gone, among many that are not", async () => {
    const kept = [];
    for (let i = 0; i < 5; i++) kept.push((await registerWorker(harness.registration)).worker.id);
    const gone = (await registerWorker(harness.registration, portWorker())).worker.id;
    const res = await harness.admin.request("DELETE", `/workers/${gone}?force=true`);
    expect(res.status).toBe(204);
    const never = randomUUID();
    const ids = [...kept, gone, never];
    expect((await missingWorkers(harness.database.knex, ids)).sort()).toEqual([gone, never].sort());
    expect(await missingWorkers(harness.database.knex, kept)).toEqual([]);
  });
});
