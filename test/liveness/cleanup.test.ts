import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkerAnswer } from "../support/factories.js";
import { startHarness, waitFor, type Api } from "../support/harness.js";
import {
  RawStream,
  expectedDigest,
  refusedStatus,
  routesOfWorker,
  streamUrl,
  type Frame,
} from "../sync/stream-client.js";
import {
  ClientPool,
  createRoute,
  getRoute,
  getStatus,
  metricSum,
  pollFor,
  portRegistration,
  routeInput,
  waitForWorker,
} from "./helpers.js";

const RETENTION = 10;

type Harness = Awaited<ReturnType<typeof startHarness>>;

let harness: Harness;
let clients: ClientPool;

beforeAll(async () => {
  harness = await startHarness({
    CHANGELOG_RETENTION: String(RETENTION),
    HEARTBEAT_INTERVAL_S: "1",
    WORKER_LOST_AFTER_S: "30",
    REAPER_CRON: "*/1 * * * * *",
  });
  clients = new ClientPool(() => harness.url);
});

afterAll(async () => {
  await clients?.stopAll();
  await harness?.close();
});

async function outFrames(api: Api): Promise<number> {
  const res = await api.get<string>("/metrics");
  return metricSum(String(res.body), "appproxy_stream_frames_total", { direction: "out" });
}

describe("expiry", () => {
  it("removes a route whose expires_at has passed, in a version its worker's table follows", async () => {
    const worker = await clients.connect(harness.admin, portRegistration("exp"));
    const expiresAt = new Date(Date.now() + 1000);
    const { route: expiring, version: createdAt } = await createRoute(
      harness.manager,
      routeInput({ worker_id: worker.workerId, expires_at: expiresAt.toISOString() }),
    );
    expect(expiring.expires_at).toBe(expiresAt.toISOString());
    const { route: later } = await createRoute(
      harness.manager,
      routeInput({
        worker_id: worker.workerId,
        expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    );
    const { route: forever } = await createRoute(
      harness.manager,
      routeInput({ worker_id: worker.workerId }),
    );
    await waitFor(
      () => [expiring, later, forever].every((r) => worker.table.get(r.id)),
      10_000,
      "the three routes in the worker's table",
    );

    await waitFor(
      async () => (await harness.admin.get(`/routes/${expiring.id}`)).status === 404,
      10_000,
      "the expired route to be removed",
    );
    expect(Date.now()).toBeGreaterThanOrEqual(expiresAt.getTime());
    const head = (await getStatus(harness.admin)).routing.version;
    expect(head).toBeGreaterThan(createdAt);
    await waitFor(
      () => worker.table.version === head && worker.table.get(expiring.id) === undefined,
      10_000,
      "the worker's table without the expired route",
    );
    expect(worker.table.get(later.id)).toBeDefined();
    expect(worker.table.get(forever.id)).toBeDefined();
    expect(worker.table.digest).toBe(
      expectedDigest(await routesOfWorker(harness.admin, worker.workerId!)),
    );
    expect((await getRoute(harness.admin, later.id)).id).toBe(later.id);
  });
});

describe(`change-log trimming (CHANGELOG_RETENTION=${RETENTION})`, () => {
  let worker: WorkerAnswer;
  let head: number;
  let minVersion: number;

  async function resume(since: number): Promise<Frame> {
    const stream = await RawStream.open(harness.url, worker.worker.id, worker.token, since);
    try {
      const hello = await stream.expect("hello");
      expect(hello.protocol).toBe(1);
      return await stream.next();
    } finally {
      await stream.close();
    }
  }

  it("keeps the last versions only: after 30 changes the change log's floor has moved", async () => {
    const registered = await harness.registration.post<WorkerAnswer>(
      "/workers/register",
      portRegistration("trim"),
    );
    expect(registered.status).toBe(201);
    worker = registered.body;
    const before = (await getStatus(harness.admin)).routing;
    for (let i = 0; i < 30; i++) {
      await createRoute(harness.manager, routeInput({ worker_id: worker.worker.id }));
    }
    const status = await pollFor(
      async () => {
        const s = await getStatus(harness.admin);
        return s.routing.version - s.routing.changelog_min_version + 1 === RETENTION
          ? s
          : undefined;
      },
      10_000,
      "the reaper to trim the change log",
    );
    head = status.routing.version;
    minVersion = status.routing.changelog_min_version;
    expect(head).toBeGreaterThanOrEqual(before.version + 30);
    expect(minVersion).toBeGreaterThan(before.changelog_min_version);
    expect(minVersion).toBe(head - RETENTION + 1);
  });

  it("answers a stream resuming from before the floor with a snapshot", async () => {
    const table = await routesOfWorker(harness.admin, worker.worker.id);
    expect(table).toHaveLength(30);
    for (const since of [1, minVersion - 2]) {
      const frame = await resume(since);
      expect(frame.type, `since=${since}`).toBe("snapshot");
      expect(frame.version).toBe(head);
      expect((frame.routes as unknown[]).length).toBe(30);
      expect(frame.digest).toBe(expectedDigest(table));
    }
  });

  it("answers a stream resuming from within the kept versions with a diff", async () => {
    const table = await routesOfWorker(harness.admin, worker.worker.id);
    for (const since of [minVersion - 1, head - 3]) {
      const frame = await resume(since);
      expect(frame.type, `since=${since}`).toBe("diff");
      expect(frame.from).toBe(since);
      expect(frame.to).toBe(head);
      // Each of those versions created one route of this worker.
      expect((frame.upserts as unknown[]).length).toBe(head - since);
      expect(frame.deletes).toEqual([]);
      expect(frame.digest).toBe(expectedDigest(table));
    }
  });
});

describe("activity", () => {
  it("is recorded as last_activity_at without a version or a frame to anyone, and feeds inactive_since", async () => {
    const reporter = await clients.connect(harness.admin, portRegistration("act"));
    const bystander = await clients.connect(harness.admin, portRegistration("bystander"));
    const t0 = new Date();
    const { route: idle } = await createRoute(
      harness.manager,
      routeInput({ worker_id: reporter.workerId }),
    );
    const { route: busy } = await createRoute(
      harness.manager,
      routeInput({ worker_id: reporter.workerId }),
    );
    await waitFor(() => reporter.table.get(busy.id), 10_000, "the routes in the table");
    expect(idle.last_activity_at).toBeNull();
    expect(Date.parse(String(idle.created_at))).toBeGreaterThanOrEqual(t0.getTime());

    const status = await getStatus(harness.admin);
    await waitFor(
      () => reporter.table.version === status.routing.version,
      10_000,
      "the reporter at the head",
    );
    await waitFor(
      () => bystander.table.version === status.routing.version,
      10_000,
      "the bystander at the head",
    );
    // The earlier tests' workers too: each gets its empty diff at its own time, and none may be
    // counted among the frames below.
    await pollFor(
      async () => {
        const now = await getStatus(harness.admin);
        const behind = now.workers_detail.filter((w) => w.connected && w.lag !== 0);
        return now.routing.version === status.routing.version && behind.length === 0
          ? now
          : undefined;
      },
      10_000,
      "every connected worker at the head",
    );
    const framesBefore = await outFrames(harness.anonymous);
    const etagBefore = (await harness.admin.get(`/routes/${busy.id}`)).headers.get("etag");
    let bystanderFrames = 0;
    let reporterFrames = 0;
    bystander.on("synced", () => (bystanderFrames += 1));
    reporter.on("synced", () => (reporterFrames += 1));

    await waitFor(() => Date.now() > Date.parse(String(busy.created_at)), 1000, "a later ms");
    const t1 = new Date();
    const trafficAt = new Date(); // not before t1; not ahead of the coordinator's clock either
    reporter.reportActivity(busy.id, trafficAt);
    const seen = await pollFor(
      async () => {
        const r = await getRoute(harness.admin, busy.id);
        return r.last_activity_at === trafficAt.toISOString() ? r : undefined;
      },
      10_000,
      "last_activity_at to be recorded",
    );

    // Not a routing change: no version, the same ETag, no frame to any worker.
    expect(seen.version).toBe(busy.version);
    const after = await harness.admin.get(`/routes/${busy.id}`);
    expect(after.headers.get("etag")).toBe(etagBefore);
    expect((await getStatus(harness.admin)).routing.version).toBe(status.routing.version);
    expect(await outFrames(harness.anonymous)).toBe(framesBefore);
    expect(bystanderFrames).toBe(0);
    expect(reporterFrames).toBe(0);
    expect(bystander.table.version).toBe(status.routing.version);

    // inactive_since: no traffic since then; a route that never had any counts from its creation.
    const inactive = async (since: Date) => {
      const res = await harness.admin.get<{ items: Array<{ id: string }> }>(
        `/routes?worker_id=${reporter.workerId}&inactive_since=${encodeURIComponent(since.toISOString())}`,
      );
      expect(res.status).toBe(200);
      return res.body.items.map((r) => r.id).sort();
    };
    expect(await inactive(t1)).toEqual([idle.id]);
    expect(await inactive(t0)).toEqual([]);
    expect(await inactive(new Date(trafficAt.getTime() + 1))).toEqual([idle.id, busy.id].sort());
  });

  it("reported a little ahead of the coordinator's clock counts from the report's arrival", async () => {
    const reporter = await clients.connect(harness.admin, portRegistration("skewed"));
    const { route } = await createRoute(
      harness.manager,
      routeInput({ worker_id: reporter.workerId }),
    );
    const sent = Date.now();
    // Within ACTIVITY_CLOCK_SKEW_MS (30 s): a clock that runs ahead, not a wrong report.
    reporter.reportActivity(route.id, new Date(sent + 20_000));
    const seen = await pollFor(
      async () => {
        const r = await getRoute(harness.admin, route.id);
        return r.last_activity_at === null ? undefined : Date.parse(String(r.last_activity_at));
      },
      10_000,
      "last_activity_at to be recorded",
    );
    expect(seen).toBeGreaterThanOrEqual(sent);
    expect(seen).toBeLessThanOrEqual(Date.now());
    // So twenty seconds later, idle culling would see it: inactive since a second from now.
    const res = await harness.admin.get<{ items: Array<{ id: string }> }>(
      `/routes?worker_id=${reporter.workerId}&inactive_since=${encodeURIComponent(new Date(Date.now() + 1000).toISOString())}`,
    );
    expect(res.body.items.map((r) => r.id)).toEqual([route.id]);
  });

  it("drops an entry it cannot use alone, and keeps every other worker's and entry's reports", async () => {
    const reporter = await clients.connect(harness.admin, portRegistration("bad-times"));
    const victim = await clients.connect(harness.admin, portRegistration("victim"));
    const on = async (client: typeof reporter) =>
      (await createRoute(harness.manager, routeInput({ worker_id: client.workerId }))).route;
    const [unstorable, beyondJs, early, ahead, good] = [
      await on(reporter),
      await on(reporter),
      await on(reporter),
      await on(reporter),
      await on(reporter),
    ];
    const theirs = await on(victim);
    await waitFor(() => reporter.table.get(good.id), 10_000, "the routes in the reporter's table");
    await waitFor(() => victim.table.get(theirs.id), 10_000, "the route in the victim's table");
    const metricsBefore = String((await harness.anonymous.get("/metrics")).body);
    const dropped = (text: string, reason: string) =>
      metricSum(text, "appproxy_activity_dropped_total", { reason });

    const at = new Date();
    // Times PostgreSQL cannot store, one before the route existed, one an hour ahead, and an
    // hour-ahead report of another worker's route that would stand in for that worker's own.
    reporter.reportActivity(unstorable.id, new Date("-000001-01-01T00:00:00.000Z"));
    reporter.reportActivity(beyondJs.id, new Date(8.64e15));
    reporter.reportActivity(early.id, new Date("2000-01-01T00:00:00.000Z"));
    reporter.reportActivity(ahead.id, new Date(Date.now() + 3_600_000));
    reporter.reportActivity(theirs.id, new Date(Date.now() + 3_600_000));
    reporter.reportActivity(good.id, at);
    victim.reportActivity(theirs.id, at);

    for (const route of [good, theirs]) {
      await waitFor(
        async () => (await getRoute(harness.admin, route.id)).last_activity_at === at.toISOString(),
        10_000,
        `the activity of ${route.id} to be recorded`,
      );
    }
    for (const route of [unstorable, beyondJs, early, ahead]) {
      expect((await getRoute(harness.admin, route.id)).last_activity_at, route.id).toBeNull();
    }
    const metricsAfter = String((await harness.anonymous.get("/metrics")).body);
    expect(dropped(metricsAfter, "not_own") - dropped(metricsBefore, "not_own")).toBe(1);
    expect(dropped(metricsAfter, "bad_time") - dropped(metricsBefore, "bad_time")).toBe(3);
  });

  it("of a route another worker serves is not recorded", async () => {
    const owner = await clients.connect(harness.admin, portRegistration("owner"));
    const stranger = await clients.connect(harness.admin, portRegistration("stranger"));
    const { route: theirs } = await createRoute(
      harness.manager,
      routeInput({ worker_id: owner.workerId }),
    );
    const { route: mine } = await createRoute(
      harness.manager,
      routeInput({ worker_id: stranger.workerId }),
    );
    const at = new Date();
    stranger.reportActivity(theirs.id, at);
    stranger.reportActivity(mine.id, at);
    await waitFor(
      async () => (await getRoute(harness.admin, mine.id)).last_activity_at === at.toISOString(),
      10_000,
      "the stranger's own route to be recorded",
    );
    expect((await getRoute(harness.admin, theirs.id)).last_activity_at).toBeNull();
  });
});

describe("WORKER_FORGET_AFTER_S", () => {
  const LOST_AFTER_S = 1;
  const FORGET_AFTER_S = 2;
  let forgetting: Harness;
  let local: ClientPool;

  beforeAll(async () => {
    forgetting = await startHarness({
      WORKER_LOST_AFTER_S: String(LOST_AFTER_S),
      WORKER_FORGET_AFTER_S: String(FORGET_AFTER_S),
      HEARTBEAT_INTERVAL_S: "1",
      REAPER_CRON: "*/1 * * * * *",
    });
    local = new ClientPool(() => forgetting.url);
  });

  afterAll(async () => {
    await local?.stopAll();
    await forgetting?.close();
  });

  it("removes a worker lost for that long: it is gone from the API and its token opens no stream", async () => {
    const live = await local.connect(forgetting.admin, portRegistration("stays"));
    const answer = await forgetting.registration.post<WorkerAnswer>(
      "/workers/register",
      portRegistration("forgotten"),
    );
    expect(answer.status).toBe(201);
    const id = answer.body.worker.id;
    const registeredAt = Date.parse(String(answer.body.worker.registered_at));

    await waitForWorker(forgetting.admin, id, (w) => w.status === "lost", "lost");
    await waitFor(
      async () => (await forgetting.admin.get(`/workers/${id}`)).status === 404,
      15_000,
      "the lost worker to be forgotten",
    );
    expect(Date.now() - registeredAt).toBeGreaterThanOrEqual(
      (LOST_AFTER_S + FORGET_AFTER_S) * 1000,
    );
    const list = await forgetting.admin.get<{ items: Array<{ id: string }> }>("/workers");
    expect(list.body.items.map((w) => w.id)).not.toContain(id);
    expect(
      await refusedStatus(streamUrl(forgetting.url, id, 0), {
        authorization: `Bearer ${answer.body.token}`,
      }),
    ).toBe(404);

    // A worker with a live stream is neither lost nor forgotten meanwhile.
    const stays = await waitForWorker(forgetting.admin, live.workerId!, () => true, "listed");
    expect(stays.status).toBe("alive");
    expect(stays.connected).toBe(true);
  });
});
