import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startHarness, waitFor } from "../support/harness.js";
import { parsePrometheus, samplesOf } from "../ops/prometheus.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";
import {
  EMPTY_DIGEST,
  RawStream,
  WireStream,
  expectedDigest,
  refusedStatus,
  routesOfWorker,
  streamUrl,
  type Frame,
} from "./stream-client.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;
interface WorkerView {
  id: string;
  connected: boolean;
  applied_version: number;
  last_nack: { version: number; error: string; at: string } | null;
}

/** Long enough that no ping-based cut-off interferes with a worker that stops reading. */
const HEARTBEAT_INTERVAL_S = 60;
/**
 * Workers here hold routes without a stream for a while; the reaper must not fail them over
 * onto the workers whose frames a test counts.
 */
const WORKER_LOST_AFTER_S = 3600;

let h: Harness;
const streams: RawStream[] = [];
const wires: WireStream[] = [];

beforeAll(async () => {
  h = await startHarness({
    HEARTBEAT_INTERVAL_S: String(HEARTBEAT_INTERVAL_S),
    WORKER_LOST_AFTER_S: String(WORKER_LOST_AFTER_S),
  });
});
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()));
  for (const w of wires.splice(0)) w.destroy();
});
afterAll(() => h?.close());

async function open(worker: WorkerAnswer, since?: number): Promise<RawStream> {
  const stream = await RawStream.open(h.url, worker.worker.id, worker.token, since);
  streams.push(stream);
  return stream;
}

/** Opens a stream and reads the hello and the initial snapshot. */
async function openSynced(worker: WorkerAnswer): Promise<{ stream: RawStream; snapshot: Frame }> {
  const stream = await open(worker);
  await stream.expect("hello");
  return { stream, snapshot: await stream.expect("snapshot") };
}

async function createRoute(workerId: string, overrides: Record<string, unknown> = {}) {
  const res = await h.manager.post<RouteAnswer>(
    "/routes",
    routeBody({ worker_id: workerId, ...overrides }),
  );
  expect(res.status).toBe(201);
  return { route: res.body, version: Number(res.headers.get("x-routing-version")) };
}

async function getWorker(id: string): Promise<WorkerView> {
  const res = await h.admin.get<WorkerView>(`/workers/${id}`);
  expect(res.status).toBe(200);
  return res.body;
}

describe("refused upgrades", () => {
  it("answers 401 without a token and with an unknown one", async () => {
    const w = await registerWorker(h.registration);
    const url = streamUrl(h.url, w.worker.id);
    expect(await refusedStatus(url)).toBe(401);
    expect(await refusedStatus(url, { authorization: "Bearer not-a-known-token-at-all" })).toBe(
      401,
    );
    expect(await refusedStatus(url, { authorization: `Bearer ${w.token}x` })).toBe(401);
  });

  it("answers 403 to a registration, manager or admin token and to another worker's token", async () => {
    const w = await registerWorker(h.registration);
    const other = await registerWorker(h.registration);
    const url = streamUrl(h.url, w.worker.id);
    for (const token of ["registration", "manager", "admin"] as const) {
      expect(await refusedStatus(url, { authorization: `Bearer ${h[token].token}` }), token).toBe(
        403,
      );
    }
    expect(await refusedStatus(url, { authorization: `Bearer ${other.token}` })).toBe(403);
  });

  it("answers 404 for a removed worker and for paths that hold no stream", async () => {
    const w = await registerWorker(h.registration);
    expect((await h.manager.delete(`/workers/${w.worker.id}`)).status).toBe(204);
    const auth = { authorization: `Bearer ${w.token}` };
    expect(await refusedStatus(streamUrl(h.url, w.worker.id), auth)).toBe(404);

    const live = await registerWorker(h.registration);
    const liveAuth = { authorization: `Bearer ${live.token}` };
    const ws = h.url.replace(/^http/, "ws");
    for (const path of [
      `/workers/${live.worker.id}/streams`,
      `/workers/${live.worker.id}`,
      "/workers/not-a-worker-id/stream",
      "/stream",
    ]) {
      expect(await refusedStatus(ws + path, liveAuth), path).toBe(404);
    }
  });
});

describe("frames the coordinator sends", () => {
  it("says hello first, then sends the worker's table as a snapshot with its digest", async () => {
    const empty = await registerWorker(h.registration);
    const first = await openSynced(empty);
    expect(first.stream.frames[0]).toEqual({
      type: "hello",
      protocol: 1,
      instance_id: h.coordinator.instanceId,
      heartbeat_interval_s: HEARTBEAT_INTERVAL_S,
      access_keys: (await h.anonymous.get("/.well-known/jwks.json")).body,
    });
    expect(first.snapshot).toMatchObject({ version: empty.version, routes: [] });
    expect(first.snapshot.digest).toBe(EMPTY_DIGEST);
    expect(EMPTY_DIGEST).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");

    const w = await registerWorker(h.registration);
    await createRoute(w.worker.id);
    const { version } = await createRoute(w.worker.id);
    await createRoute(w.worker.id, { app: "tensorboard" });
    const last = await createRoute(w.worker.id, { protocol: "tcp", app: "ssh" });
    expect(last.version).toBeGreaterThan(version);
    const { stream, snapshot } = await openSynced(w);
    expect(stream.frames[0]!.type).toBe("hello");
    const expected = await routesOfWorker<RouteAnswer>(h.admin, w.worker.id);
    expect(snapshot.version).toBe(last.version);
    const routes = snapshot.routes as RouteAnswer[];
    expect([...routes].sort((a, b) => a.id.localeCompare(b.id))).toEqual(
      [...expected].sort((a, b) => a.id.localeCompare(b.id)),
    );
    expect(snapshot.digest).toBe(expectedDigest(expected));
  });

  it("sends a diff from the previous version to the new one with the created route", async () => {
    const w = await registerWorker(h.registration);
    await createRoute(w.worker.id);
    const { stream, snapshot } = await openSynced(w);
    const { route, version } = await createRoute(w.worker.id);
    const diff = await stream.expect("diff");
    expect(diff).toMatchObject({ from: snapshot.version, to: version, deletes: [] });
    expect(diff.upserts).toEqual([route]);
    expect(diff.digest).toBe(expectedDigest(await routesOfWorker(h.admin, w.worker.id)));

    const patched = await h.manager.patch<RouteAnswer>(`/routes/${route.id}`, {
      open_to_public: true,
    });
    expect(patched.status).toBe(200);
    const patchDiff = await stream.expect("diff");
    expect(patchDiff).toMatchObject({ from: version, to: patched.body.version, deletes: [] });
    expect(patchDiff.upserts).toEqual([patched.body]);

    expect((await h.manager.delete(`/routes/${route.id}`)).status).toBe(204);
    const deleteDiff = await stream.expect("diff");
    expect(deleteDiff).toMatchObject({
      from: patched.body.version,
      upserts: [],
      deletes: [route.id],
    });
    expect(deleteDiff.digest).toBe(expectedDigest(await routesOfWorker(h.admin, w.worker.id)));
  });
});

describe("a worker no change touched", () => {
  // The empty diff is due within HEARTBEAT_INTERVAL_S: a short one keeps this quick.
  let fast: Harness;
  const fastStreams: RawStream[] = [];
  beforeAll(async () => {
    fast = await startHarness({
      HEARTBEAT_INTERVAL_S: "1",
      WORKER_LOST_AFTER_S: String(WORKER_LOST_AFTER_S),
    });
  });
  afterEach(async () => {
    await Promise.all(fastStreams.splice(0).map((s) => s.close()));
  });
  afterAll(() => fast?.close());

  async function openFast(worker: WorkerAnswer) {
    const stream = await RawStream.open(fast.url, worker.worker.id, worker.token);
    fastStreams.push(stream);
    await stream.expect("hello");
    return { stream, snapshot: await stream.expect("snapshot") };
  }

  async function createFast(workerId: string) {
    const res = await fast.manager.post<RouteAnswer>("/routes", routeBody({ worker_id: workerId }));
    expect(res.status).toBe(201);
    return { route: res.body, version: Number(res.headers.get("x-routing-version")) };
  }

  const createOn = async (workerId: string) => (await createFast(workerId)).version;

  it("gets an empty diff within HEARTBEAT_INTERVAL_S and counts as applied without acking it", async () => {
    const busy = await registerWorker(fast.registration);
    const idle = await registerWorker(fast.registration);
    const { stream, snapshot } = await openFast(idle);
    stream.send({ type: "ack", version: snapshot.version, digest: snapshot.digest });
    const version = await createOn(busy.worker.id);
    const diff = await stream.expect("diff", 5000);
    expect(diff).toEqual({
      type: "diff",
      from: snapshot.version,
      to: version,
      upserts: [],
      deletes: [],
      digest: snapshot.digest,
    });
    // No ack for it: the worker acknowledged `from`, so it holds `to`.
    await waitFor(
      async () =>
        (await fast.admin.get<WorkerView>(`/workers/${idle.worker.id}`)).body.applied_version ===
        version,
      5000,
      "applied_version at the empty diff's version",
    );
  });

  it("is not counted as applied while it has not acknowledged its last change", async () => {
    const busy = await registerWorker(fast.registration);
    const w = await registerWorker(fast.registration);
    const { stream, snapshot } = await openFast(w);
    stream.send({ type: "ack", version: snapshot.version, digest: snapshot.digest });
    const changed = await createOn(w.worker.id);
    await stream.expect("diff");
    const later = await createOn(busy.worker.id);
    const empty = await stream.expect("diff", 5000);
    expect(empty).toMatchObject({ from: changed, to: later, upserts: [], deletes: [] });
    // Its change is unacknowledged: neither that version nor the empty diff's counts.
    const view = await fast.admin.get<WorkerView>(`/workers/${w.worker.id}`);
    expect(view.body.applied_version).toBe(snapshot.version);
    // Acknowledging the change carries the worker on to the empty diff's version.
    stream.send({ type: "ack", version: changed, digest: empty.digest });
    await waitFor(
      async () =>
        (await fast.admin.get<WorkerView>(`/workers/${w.worker.id}`)).body.applied_version ===
        later,
      5000,
      "applied_version at the empty diff's version",
    );
  });

  // With the fast harness: the bystander's empty diffs come within its one-second interval.
  it("after notifications may have been missed, sends a snapshot to a worker whose row changed during its stream", async () => {
    const w = await registerWorker(fast.registration);
    const { stream } = await openFast(w);
    const bystander = await openFast(await registerWorker(fast.registration));
    const { route } = await createFast(w.worker.id);
    await stream.expect("diff");
    await bystander.stream.expect("diff");
    // A registration with another address whose notice this instance never heard.
    await fast.database
      .knex("workers")
      .where({ id: w.worker.id })
      .update({ advertised_host: "proxy-8.example.com", updated_at: new Date() });
    await fast.coordinator.hub.afterMissedNotices();
    const snapshot = await stream.expect("snapshot");
    expect((snapshot.routes as RouteAnswer[]).map((r) => r.url)).toEqual([
      `http://proxy-8.example.com:${String(route.port)}/`,
    ]);
    // A worker whose row did not change meanwhile gets nothing extra: its next frame is a diff.
    const later = await createFast(w.worker.id);
    expect(await stream.next()).toMatchObject({ type: "diff", to: later.version });
    expect(await bystander.stream.next()).toMatchObject({ type: "diff", to: later.version });
  });

  it("spreads a fleet's empty diffs over time instead of sending them together", async () => {
    const busy = await registerWorker(fast.registration);
    const idle = await Promise.all(
      Array.from({ length: 12 }, () => registerWorker(fast.registration)),
    );
    const synced = await Promise.all(idle.map((w) => openFast(w)));
    const version = await createOn(busy.worker.id);
    const answeredAt = Date.now();
    const arrivals = await Promise.all(
      synced.map(async ({ stream, snapshot }) => {
        const diff = await stream.expect("diff", 5000);
        const at = Date.now() - answeredAt;
        expect(diff).toMatchObject({ from: snapshot.version, to: version, upserts: [] });
        return at;
      }),
    );
    // Each worker has its own share of a 400 ms spread; twelve sent together would arrive within
    // a few milliseconds of each other.
    expect(Math.max(...arrivals) - Math.min(...arrivals)).toBeGreaterThan(60);
  });
});

describe("frames a worker sends", () => {
  it("records an ack as the worker's applied_version (unknown fields ignored)", async () => {
    const w = await registerWorker(h.registration);
    const { stream } = await openSynced(w);
    const { version } = await createRoute(w.worker.id);
    const diff = await stream.expect("diff");
    expect((await getWorker(w.worker.id)).applied_version).toBeLessThan(version);
    stream.send({ type: "ack", version: diff.to, digest: diff.digest, applied_in_ms: 3 });
    await waitFor(
      async () => (await getWorker(w.worker.id)).applied_version === version,
      5000,
      "ack",
    );
    expect(stream.closeInfo).toBeUndefined();
  });

  it("answers an ack with a wrong digest with a snapshot", async () => {
    const w = await registerWorker(h.registration);
    await createRoute(w.worker.id);
    const { stream, snapshot } = await openSynced(w);
    stream.send({ type: "ack", version: snapshot.version, digest: "0".repeat(64) });
    const again = await stream.expect("snapshot");
    expect(again.version).toBe(snapshot.version);
    expect(again.digest).toBe(expectedDigest(await routesOfWorker(h.admin, w.worker.id)));
    expect(again.routes).toEqual(snapshot.routes);
  });

  it("answers resync with a snapshot", async () => {
    const w = await registerWorker(h.registration);
    const { stream } = await openSynced(w);
    const { route, version } = await createRoute(w.worker.id);
    await stream.expect("diff");
    stream.send({ type: "resync" });
    const snapshot = await stream.expect("snapshot");
    expect(snapshot).toEqual({
      type: "snapshot",
      version,
      routes: [route],
      digest: expectedDigest([route]),
    });
  });

  it("sends a snapshot with the new URLs when the worker registers again with another address", async () => {
    const registration = portWorker();
    const w = await registerWorker(h.registration, registration);
    const { stream } = await openSynced(w);
    const first = await createRoute(w.worker.id);
    await stream.expect("diff");
    // The same registration again changes no URL: the next frame is the next change's diff.
    await registerWorker(h.registration, registration, w.token);
    const second = await createRoute(w.worker.id);
    expect(await stream.next()).toMatchObject({ type: "diff", to: second.version });

    await registerWorker(
      h.registration,
      { ...registration, advertised_host: "proxy-7.example.com", tls: true },
      w.token,
    );
    const snapshot = await stream.expect("snapshot");
    // No routing version: placement did not change, so neither do versions nor the digest.
    expect(snapshot.version).toBe(second.version);
    expect(snapshot.digest).toBe(expectedDigest([first.route, second.route]));
    const byId = (a: RouteAnswer, b: RouteAnswer) => a.id.localeCompare(b.id);
    const routes = (snapshot.routes as RouteAnswer[]).sort(byId);
    expect(routes.map((r) => r.url)).toEqual(
      routes.map((r) => `https://proxy-7.example.com:${String(r.port)}/`),
    );
    expect(routes).toEqual((await routesOfWorker<RouteAnswer>(h.admin, w.worker.id)).sort(byId));
  });

  it("records a nack as last_nack and does not resend the version", async () => {
    const w = await registerWorker(h.registration);
    const { stream } = await openSynced(w);
    const { version } = await createRoute(w.worker.id);
    await stream.expect("diff");
    stream.send({ type: "nack", version, error: "port 10200 is busy" });
    const worker = await waitFor(
      async () => {
        const view = await getWorker(w.worker.id);
        return view.last_nack ? view : false;
      },
      5000,
      "last_nack",
    );
    if (!worker) throw new Error("unreachable: waitFor returns a truthy value");
    expect(worker.last_nack).toMatchObject({ version, error: "port 10200 is busy" });
    expect(Number.isNaN(Date.parse(worker.last_nack!.at))).toBe(false);
    expect(worker.applied_version).toBeLessThan(version);
    // Whatever comes next is the answer to this resync, not the nacked diff again.
    stream.send({ type: "resync" });
    expect((await stream.next()).type).toBe("snapshot");
  });

  it("ignores a frame type it does not know and keeps the stream open", async () => {
    const w = await registerWorker(h.registration);
    const { stream, snapshot } = await openSynced(w);
    stream.send({ type: "telemetry", cpu: 0.5 });
    stream.send({ type: "resync" });
    expect(await stream.next()).toMatchObject({ type: "snapshot", version: snapshot.version });
    expect(stream.closeInfo).toBeUndefined();
  });

  it.each([
    ["a frame that is not JSON", "{this is not json"],
    ["a frame without type", JSON.stringify({ version: 1 })],
    ["a frame whose type is not a string", JSON.stringify({ type: 7 })],
    ["an ack of the wrong shape", JSON.stringify({ type: "ack", version: "7", digest: "abc" })],
    ["a nack without error", JSON.stringify({ type: "nack", version: 1 })],
    // Its error quotes the digest: 200 bytes of two-byte characters, more than a close frame holds.
    [
      "an ack whose bad digest is long in bytes",
      JSON.stringify({ type: "ack", version: 1, digest: "é".repeat(100) }),
    ],
    [
      "an activity report with a long non-ASCII key",
      JSON.stringify({ type: "activity", routes: { ["é".repeat(80)]: new Date().toISOString() } }),
    ],
  ])("answers %s with an error frame, then closes with 4400", async (_what, text) => {
    const w = await registerWorker(h.registration);
    const { stream } = await openSynced(w);
    stream.send(text);
    const error = await stream.expect("error");
    expect(typeof error.code).toBe("string");
    expect(error.code).not.toBe("");
    expect(typeof error.message).toBe("string");
    const closed = await stream.closedWithin();
    expect(closed.code).toBe(4400);
    expect(Buffer.byteLength(closed.reason)).toBeLessThanOrEqual(123);
    // The coordinator is still there for everyone else.
    expect((await h.anonymous.get("/healthz")).status).toBe(200);
  });
});

describe("a worker that repeats itself", () => {
  const framesIn = async (type: string) =>
    samplesOf(
      parsePrometheus((await h.anonymous.get<string>("/metrics")).body),
      "appproxy_stream_frames_total",
      {
        direction: "in",
        type,
      },
    ).reduce((n, sample) => n + sample.value, 0);

  it("gets one snapshot for a burst of resyncs, not one each ahead of everyone's diffs", async () => {
    const w = await registerWorker(h.registration);
    const { stream } = await openSynced(w);
    const before = await framesIn("resync");
    const burst = 2000;
    for (let i = 0; i < burst; i++) stream.send({ type: "resync" });
    await waitFor(async () => (await framesIn("resync")) >= before + burst, 10_000, "the burst");
    // The hub's queue runs in order: the diff of a change made now comes after every snapshot.
    const { version } = await createRoute(w.worker.id);
    let snapshots = 0;
    for (;;) {
      const frame = await stream.next();
      if (frame.type === "snapshot") snapshots += 1;
      if (frame.type === "diff" && frame.to === version) break;
    }
    expect(snapshots).toBeGreaterThanOrEqual(1);
    expect(snapshots).toBeLessThan(burst / 20);
  });

  it("has its newest nack recorded after a burst of them", async () => {
    const w = await registerWorker(h.registration);
    const { stream } = await openSynced(w);
    for (let i = 1; i <= 500; i++) stream.send({ type: "nack", version: i, error: `nack ${i}` });
    // The last one's text holds a NUL, which PostgreSQL cannot store: it is replaced, not lost.
    stream.send({ type: "nack", version: 501, error: "nack 501\u0000" });
    await waitFor(
      async () => (await getWorker(w.worker.id)).last_nack?.error === "nack 501\uFFFD",
      10_000,
      "the last nack",
    );
    expect(stream.closeInfo).toBeUndefined();
  });
});

describe("stream lifecycle and limits", () => {
  it("closes the first stream of a worker with 4000 when a second one opens", async () => {
    const w = await registerWorker(h.registration);
    const first = await openSynced(w);
    const second = await openSynced(w);
    expect((await first.stream.closedWithin()).code).toBe(4000);
    const { route, version } = await createRoute(w.worker.id);
    const diff = await second.stream.expect("diff");
    expect(diff).toMatchObject({ from: second.snapshot.version, to: version, upserts: [route] });
    expect((await getWorker(w.worker.id)).connected).toBe(true);
  });

  it("accepts a frame of exactly 1 MiB and refuses a larger one with close 1009", async () => {
    const w = await registerWorker(h.registration);
    const { stream, snapshot } = await openSynced(w);
    const frameOf = (bytes: number) => {
      const start = '{"type":"padding","pad":"';
      const end = '"}';
      return start + "x".repeat(bytes - start.length - end.length) + end;
    };
    stream.send(frameOf(1024 * 1024));
    stream.send({ type: "resync" });
    expect(await stream.next()).toMatchObject({ type: "snapshot", version: snapshot.version });
    stream.send(frameOf(1024 * 1024 + 1));
    expect((await stream.closedWithin()).code).toBe(1009);
  });

  /** A worker whose table's snapshot is about 9 MiB: 360 routes of about 25 KB each. */
  async function workerWithBigTable(ports: [number, number]): Promise<WorkerAnswer> {
    const w = await registerWorker(
      h.registration,
      portWorker({ port_range: ports, protocols: ["http"] }),
    );
    const bigRoute = () =>
      routeBody({
        worker_id: w.worker.id,
        labels: Object.fromEntries(
          Array.from({ length: 64 }, (_, i) => [`label-${i}-${"k".repeat(50)}`, "v".repeat(255)]),
        ),
        allowed_client_ips: Array.from({ length: 256 }, (_, i) => `10.${i}.0.0/16`),
      });
    for (let batch = 0; batch < 12; batch++) {
      const res = await h.manager.post("/routes/batch", {
        routes: Array.from({ length: 30 }, bigRoute),
      });
      expect(res.status).toBe(201);
    }
    return w;
  }

  it("sends a table larger than 8 MiB as one snapshot, and keeps the stream open", async () => {
    const w = await workerWithBigTable([22000, 22999]);
    const stream = await open(w);
    await stream.expect("hello");
    const snapshot = await stream.expect("snapshot", 30_000);
    expect((snapshot.routes as unknown[]).length).toBe(360);
    expect(JSON.stringify(snapshot).length).toBeGreaterThan(8 * 1024 * 1024);
    stream.send({ type: "ack", version: snapshot.version, digest: snapshot.digest });
    // Not taken for a worker that fell behind: the next change comes as a diff on this stream.
    const { version } = await createRoute(w.worker.id);
    expect(await stream.next(10_000)).toMatchObject({ type: "diff", to: version });
    expect(stream.closeInfo).toBeUndefined();
    await stream.close();
  });

  it("counts a second oversized snapshot behind the first: a worker asking for them unread gets 4008", async () => {
    const w = await workerWithBigTable([23000, 23999]);
    const wire = await WireStream.open(h.url, w.worker.id, w.token);
    wires.push(wire);
    await wire.until(() => wire.frames.length >= 2, 30_000, "hello and snapshot");
    wire.socket.pause();
    const snapshotsOut = async () =>
      samplesOf(
        parsePrometheus((await h.anonymous.get<string>("/metrics")).body),
        "appproxy_stream_frames_total",
        { direction: "out", type: "snapshot" },
      ).reduce((n, sample) => n + sample.value, 0);
    // Snapshots asked for and not read fill the kernel's buffers first (several MiB), then the
    // coordinator's; the one oversized frame it is sending does not count, one more behind it
    // does. Without that, each snapshot would be exempt and memory would grow a table per ask.
    const hub = h.coordinator.hub;
    let asked = 0;
    while (hub.streaming(w.worker.id) && asked < 8) {
      const before = await snapshotsOut();
      wire.sendText(JSON.stringify({ type: "resync" }));
      asked += 1;
      await waitFor(
        async () => !hub.streaming(w.worker.id) || (await snapshotsOut()) > before,
        10_000,
        "a snapshot or the close",
      );
    }
    expect(hub.streaming(w.worker.id)).toBe(false);
    wire.socket.resume();
    await wire.until(() => wire.closeCode !== undefined, 30_000, "the close frame");
    expect(wire.closeCode).toBe(4008);
  });

  it("closes a worker that stops reading with 4008 once more than 8 MiB waits for it", async () => {
    const w = await registerWorker(
      h.registration,
      portWorker({ port_range: [20000, 21999], protocols: ["http"] }),
    );
    const wire = await WireStream.open(h.url, w.worker.id, w.token);
    wires.push(wire);
    await wire.until(() => wire.frames.length >= 2, 5000, "hello and snapshot");
    expect(wire.frames.map((f) => f.type)).toEqual(["hello", "snapshot"]);
    const snapshotVersion = wire.frames[1]!.version as number;

    // The worker stops reading. Its kernel buffers fill first (a few MiB at most), then the
    // coordinator's own buffer grows: 20 MiB pushed leaves no doubt that it passed 8 MiB.
    wire.socket.pause();
    const bigRoute = () =>
      routeBody({
        worker_id: w.worker.id,
        upstreams: Array.from({ length: 64 }, (_, i) => ({
          host: `10.9.${i}.1`,
          port: 8000 + i,
          weight: 1,
        })),
        labels: Object.fromEntries(
          Array.from({ length: 64 }, (_, i) => [
            `label-${String(i).padStart(2, "0")}-${"k".repeat(50)}`,
            "v".repeat(255),
          ]),
        ),
        allowed_client_ips: Array.from({ length: 256 }, (_, i) => `10.${i}.0.0/16`),
      });
    let pushed = 0;
    let head = snapshotVersion;
    while (pushed < 20 * 1024 * 1024) {
      const res = await h.manager.request<{ version: number; items: RouteAnswer[] }>(
        "POST",
        "/routes/batch",
        { routes: Array.from({ length: 30 }, bigRoute) },
      );
      expect(res.status).toBe(201);
      pushed += JSON.stringify(res.body.items).length;
      head = res.body.version;
    }

    // Reading again, the worker finds what was sent before the limit, an error frame and a 4008.
    wire.socket.resume();
    await wire.until(() => wire.closeCode !== undefined, 30_000, "the close frame");
    expect(wire.closeCode).toBe(4008);
    const frames = wire.frames;
    const last = frames.at(-1)!;
    expect(last.type).toBe("error");
    expect(typeof last.code).toBe("string");
    const diffs = frames.slice(2, -1);
    expect(diffs.every((f) => f.type === "diff")).toBe(true);
    let version = snapshotVersion;
    for (const diff of diffs) {
      expect(diff.from).toBe(version);
      version = diff.to as number;
    }
    // The coordinator stopped sending at the limit rather than buffering everything.
    expect(version).toBeLessThan(head);
    expect(wire.textBytes).toBeLessThan(pushed);

    wire.replyClose(4008);
    await wire.until(() => wire.ended, 5000, "the coordinator to end the connection");
    await waitFor(async () => !(await getWorker(w.worker.id)).connected, 5000, "connected false");

    // Coming back with its version, the worker is brought to the coordinator's table.
    const back = await open(w, version);
    await back.expect("hello");
    const catchUp = await back.next(10_000);
    const expected = await routesOfWorker(h.admin, w.worker.id);
    expect(["diff", "snapshot"]).toContain(catchUp.type);
    expect(catchUp.type === "diff" ? catchUp.to : catchUp.version).toBe(head);
    if (catchUp.type === "diff") expect(catchUp.from).toBe(version);
    expect(catchUp.digest).toBe(expectedDigest(expected));
  });
});
