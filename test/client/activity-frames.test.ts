import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ACTIVITY_FRAME_BUDGET_BYTES,
  ACTIVITY_FRAME_MAX_ROUTES,
  ActivityBuffer,
} from "../../src/client/activity.js";
import {
  WorkerClient,
  encodeWorkerFrame,
  type DisconnectedEvent,
  type WorkerRegistration,
} from "../../src/client/index.js";
import { FakeCoordinator } from "./fake-coordinator.js";
import { waitFor } from "./wait-for.js";

/** The coordinator refuses inbound frames larger than this (ws closes them with 1009). */
const COORDINATOR_FRAME_LIMIT_BYTES = 1_048_576;

const registration: WorkerRegistration = {
  name: "w1",
  advertised_host: "w1.example.com",
  frontend_mode: "port",
  port_range: [10200, 10299],
  protocols: ["http"],
  modes: ["interactive"],
  tls: false,
  labels: {},
  dedicated: false,
};

function frameBytes(routes: Record<string, string>): number {
  return Buffer.byteLength(encodeWorkerFrame({ type: "activity", routes }));
}

function routeId(index: number): string {
  return `00000000-0000-4000-8000-${String(index).padStart(12, "0")}`;
}

describe("ActivityBuffer.take with a byte budget", () => {
  it("splits the pending activity into frames within the budget, each route once", () => {
    const buffer = new ActivityBuffer();
    const at = new Date("2030-01-01T00:00:00.000Z");
    // Ids of every length, some multi-byte in UTF-8, some escaped in JSON: sizes are measured.
    const ids = Array.from({ length: 500 }, (_, i) => `route-${"x".repeat(i % 40)}-é"\\-${i}`);
    for (const id of ids) buffer.record(id, at);
    const budget = 1000;

    const frames: Record<string, string>[] = [];
    while (buffer.size > 0) {
      const before = buffer.size;
      frames.push(buffer.take(budget));
      expect(buffer.size).toBeLessThan(before);
    }

    expect(frames.length).toBeGreaterThan(1);
    for (const routes of frames) expect(frameBytes(routes)).toBeLessThanOrEqual(budget);
    // Frames are filled: a frame and the first entry of the next would not fit together.
    for (const [index, routes] of frames.slice(0, -1).entries()) {
      const [nextId, nextAt] = Object.entries(frames[index + 1] ?? {})[0] ?? [];
      expect(frameBytes({ ...routes, [String(nextId)]: String(nextAt) })).toBeGreaterThan(budget);
    }
    const sent = frames.flatMap((routes) => Object.keys(routes));
    expect(sent).toHaveLength(ids.length);
    expect(new Set(sent)).toEqual(new Set(ids));
    const times = new Set(frames.flatMap((routes) => Object.values(routes)));
    expect(times).toEqual(new Set([at.toISOString()]));
  });

  it("leaves what it did not take pending, and take() without a budget empties the buffer", () => {
    const buffer = new ActivityBuffer();
    const at = new Date("2030-01-01T00:00:00.000Z");
    for (let i = 0; i < 100; i += 1) buffer.record(routeId(i), at);

    const first = buffer.take(2000);
    const taken = Object.keys(first).length;
    expect(taken).toBeGreaterThan(0);
    expect(buffer.size).toBe(100 - taken);

    const rest = buffer.take();
    expect(Object.keys(rest)).toHaveLength(100 - taken);
    expect(buffer.size).toBe(0);
    expect(buffer.take(2000)).toEqual({});
  });

  it("takes an entry alone over the budget by itself, so a flush always progresses", () => {
    const buffer = new ActivityBuffer();
    const at = new Date("2030-01-01T00:00:00.000Z");
    buffer.record("r".repeat(300), at);
    buffer.record("small", at);

    expect(Object.keys(buffer.take(100))).toEqual(["r".repeat(300)]);
    expect(buffer.take(100)).toEqual({ small: at.toISOString() });
  });

  it("takes at most maxRoutes entries, whatever the byte budget leaves room for", () => {
    const buffer = new ActivityBuffer();
    const at = new Date("2030-01-01T00:00:00.000Z");
    for (let i = 0; i < 25; i++) buffer.record(`r${i}`, at);
    expect(Object.keys(buffer.take(1_000_000, 10))).toHaveLength(10);
    expect(Object.keys(buffer.take(1_000_000, 10))).toHaveLength(10);
    expect(Object.keys(buffer.take(1_000_000, 10))).toEqual(["r20", "r21", "r22", "r23", "r24"]);
  });

  it("keeps the per-frame budget well under the coordinator's 1 MiB limit", () => {
    expect(ACTIVITY_FRAME_BUDGET_BYTES).toBeLessThanOrEqual(COORDINATOR_FRAME_LIMIT_BYTES / 2);
  });
});

describe("WorkerClient activity frames against a fake coordinator", () => {
  let fake: FakeCoordinator;
  let client: WorkerClient | undefined;

  beforeEach(async () => {
    fake = await FakeCoordinator.start();
  });

  afterEach(async () => {
    await client?.stop();
    client = undefined;
    await fake.close();
  });

  it("sends activity for 40 000 routes as several frames under 1 MiB, each route once", async () => {
    const routeCount = 40_000;
    const created = fake.client(registration, { activityIntervalMs: 60_000 });
    client = created;
    const disconnected: DisconnectedEvent[] = [];
    created.on("disconnected", (event) => disconnected.push(event));
    const errors: Error[] = [];
    created.on("error", (error) => errors.push(error));
    await created.start();
    const stream = await waitFor(() => fake.lastStream, 5000, "the stream");
    const activityFrameSizes: number[] = [];
    stream.socket.on("message", (data: Buffer) => {
      if (data.includes('"type":"activity"')) activityFrameSizes.push(data.length);
    });

    // Nothing was sent on this stream yet, so the first flush is due at once despite the interval.
    const t0 = Date.parse("2030-01-01T00:00:00.000Z");
    for (let i = 0; i < routeCount; i += 1) created.reportActivity(routeId(i), new Date(t0 + i));

    const received = new Map<string, string>();
    let entries = 0;
    await waitFor(
      () => {
        received.clear();
        entries = 0;
        for (const frame of stream.framesOfType("activity")) {
          for (const [id, at] of Object.entries(frame.routes as Record<string, string>)) {
            received.set(id, at);
            entries += 1;
          }
        }
        return entries >= routeCount;
      },
      10_000,
      `activity for ${routeCount} routes`,
    );

    const frames = stream.framesOfType("activity");
    expect(frames.length).toBeGreaterThan(1);
    expect(activityFrameSizes).toHaveLength(frames.length);
    for (const routes of frames) {
      // The coordinator refuses a frame of more routes than this (4400).
      expect(Object.keys(routes.routes as object).length).toBeLessThanOrEqual(
        ACTIVITY_FRAME_MAX_ROUTES,
      );
    }
    for (const size of activityFrameSizes) {
      expect(size).toBeLessThanOrEqual(ACTIVITY_FRAME_BUDGET_BYTES);
      expect(size).toBeLessThan(COORDINATOR_FRAME_LIMIT_BYTES);
    }
    expect(entries).toBe(routeCount);
    expect(received.size).toBe(routeCount);
    const misreported = Array.from({ length: routeCount }, (_, i) => i).filter(
      (i) => received.get(routeId(i)) !== new Date(t0 + i).toISOString(),
    );
    expect(misreported).toEqual([]);
    expect(stream.closeCode).toBeUndefined();
    expect(disconnected).toEqual([]);
    expect(errors).toEqual([]);
    expect(fake.streams).toHaveLength(1);
  });
});
