import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  WorkerClient,
  tableDigest,
  type DisconnectedEvent,
  type RegisteredEvent,
  type Route,
  type StoppedEvent,
  type SyncedEvent,
  type TableChange,
  type WorkerClientOptions,
  type WorkerRegistration,
} from "../../src/client/index.js";
import { FakeCoordinator, type FakeStream } from "./fake-coordinator.js";
import { makeRoute } from "./route-factory.js";
import { waitFor } from "./wait-for.js";

const registration: WorkerRegistration = {
  name: "w1",
  advertised_host: "w1.example.com",
  frontend_mode: "port",
  port_range: [10200, 10299],
  protocols: ["http", "tcp"],
  modes: ["interactive", "inference"],
  tls: false,
  labels: { zone: "eu" },
  dedicated: false,
};

/** Everything a client told its listeners, for assertions. */
interface Observed {
  registered: RegisteredEvent[];
  changes: TableChange[];
  synced: SyncedEvent[];
  disconnected: DisconnectedEvent[];
  stopped: StoppedEvent[];
  errors: Error[];
}

function activeTimers(): number {
  return process.getActiveResourcesInfo().filter((resource) => resource === "Timeout").length;
}

describe("WorkerClient against a fake coordinator", () => {
  let fake: FakeCoordinator;
  let client: WorkerClient | undefined;
  let routes: Route[];

  beforeEach(async () => {
    fake = await FakeCoordinator.start();
    routes = [makeRoute({ version: 3 }), makeRoute({ version: 5 })];
    fake.table = { version: 5, routes };
  });

  afterEach(async () => {
    await client?.stop();
    client = undefined;
    await fake.close();
  });

  function startClient(overrides: Partial<WorkerClientOptions> = {}): {
    client: WorkerClient;
    observed: Observed;
  } {
    const created = fake.client(registration, { activityIntervalMs: 200, ...overrides });
    const observed: Observed = {
      registered: [],
      changes: [],
      synced: [],
      disconnected: [],
      stopped: [],
      errors: [],
    };
    created.on("registered", (event) => observed.registered.push(event));
    created.on("change", (change) => observed.changes.push(change));
    created.on("synced", (event) => observed.synced.push(event));
    created.on("disconnected", (event) => observed.disconnected.push(event));
    created.on("stopped", (event) => observed.stopped.push(event));
    created.on("error", (error) => observed.errors.push(error));
    client = created;
    return { client: created, observed };
  }

  async function connectedStream(index = 0): Promise<FakeStream> {
    return waitFor(() => fake.streams[index], 5000, `stream #${index + 1}`);
  }

  it("registers with the registration token, then streams with the worker token from its version", async () => {
    fake.streamUrlStyle = "unroutable";
    const { client, observed } = startClient();

    await client.start();

    expect(fake.registrations).toHaveLength(1);
    const [call] = fake.registrations;
    expect(call?.headers.authorization).toBe("Bearer registration-token");
    expect(call?.headers["content-type"]).toBe("application/json");
    expect(call?.body).toEqual(registration);
    expect(client.workerId).toBe("w-1");
    expect(client.table.version).toBe(5);
    expect(client.table.routes).toEqual(routes);
    expect(observed.registered).toEqual([
      {
        workerId: "w-1",
        name: "w1",
        version: 5,
        routes: 2,
        previousWorkerId: null,
        accessKeys: null,
      },
    ]);

    await connectedStream();
    expect(fake.upgrades).toEqual([
      { workerId: "w-1", since: "5", authorization: "Bearer worker-token-1" },
    ]);
  });

  it("applies a diff, then acknowledges it with the table's digest", async () => {
    const { client, observed } = startClient();
    await client.start();
    const stream = await connectedStream();
    const [first, second] = routes as [Route, Route];
    const added = makeRoute({ version: 6 });
    const expectedDigest = tableDigest([second, added]);

    stream.send({
      type: "diff",
      from: 5,
      to: 6,
      upserts: [added],
      deletes: [first.id],
      digest: expectedDigest,
    });

    const [ack] = await waitFor(
      () => stream.framesOfType("ack").length > 0 && stream.framesOfType("ack"),
    );
    expect(ack).toEqual({ type: "ack", version: 6, digest: expectedDigest });
    expect(client.table.version).toBe(6);
    expect(client.table.digest).toBe(expectedDigest);
    expect(observed.changes.at(-1)).toEqual({
      from: 5,
      to: 6,
      upserts: [added],
      deletes: [first.id],
    });
    expect(observed.synced.at(-1)).toEqual({ version: 6, digest: expectedDigest, routes: 2 });
  });

  it("does not acknowledge an empty diff from the version it acknowledged on this stream", async () => {
    const { client, observed } = startClient();
    await client.start();
    const stream = await connectedStream();
    const digest = tableDigest(routes);
    const empty = (from: number, to: number) => ({
      type: "diff",
      from,
      to,
      upserts: [],
      deletes: [],
      digest,
    });

    // The first frame of a stream is acknowledged even when empty: nothing was acked here yet.
    stream.send(empty(5, 6));
    await waitFor(() => stream.framesOfType("ack").length === 1);
    stream.send(empty(6, 7));
    stream.send(empty(7, 9));
    const added = makeRoute({ version: 10 });
    const withAdded = tableDigest([...routes, added]);
    stream.send({
      type: "diff",
      from: 9,
      to: 10,
      upserts: [added],
      deletes: [],
      digest: withAdded,
    });

    await waitFor(() => stream.framesOfType("ack").length === 2);
    expect(stream.framesOfType("ack")).toEqual([
      { type: "ack", version: 6, digest },
      { type: "ack", version: 10, digest: withAdded },
    ]);
    expect(observed.synced.map((s) => s.version)).toEqual([6, 7, 9, 10]);
    expect(client.table.version).toBe(10);
  });

  it("acknowledges a snapshot and reports what it changed", async () => {
    const { client, observed } = startClient();
    await client.start();
    const stream = await connectedStream();
    const replacement = [makeRoute({ version: 8 })];

    stream.send({
      type: "snapshot",
      version: 8,
      routes: replacement,
      digest: tableDigest(replacement),
    });

    await waitFor(() => stream.framesOfType("ack").length > 0);
    expect(stream.framesOfType("ack")).toEqual([
      { type: "ack", version: 8, digest: tableDigest(replacement) },
    ]);
    expect(client.table.routes).toEqual(replacement);
    expect(observed.changes.at(-1)).toEqual({
      from: 5,
      to: 8,
      upserts: replacement,
      deletes: routes.map((route) => route.id),
    });
  });

  it("asks for a snapshot, without acknowledging, when a diff does not start at its version", async () => {
    const { client } = startClient();
    await client.start();
    const stream = await connectedStream();
    const before = { version: client.table.version, digest: client.table.digest };
    const stray = makeRoute({ version: 7 });

    stream.send({
      type: "diff",
      from: 3,
      to: 7,
      upserts: [stray],
      deletes: [],
      digest: tableDigest([stray]),
    });
    // A second diff sent before the coordinator saw the resync must not ask again.
    stream.send({
      type: "diff",
      from: 7,
      to: 8,
      upserts: [],
      deletes: [],
      digest: tableDigest([stray]),
    });

    await waitFor(() => stream.framesOfType("resync").length > 0);
    expect({ version: client.table.version, digest: client.table.digest }).toEqual(before);

    const current = [makeRoute({ version: 8 })];
    stream.send({ type: "snapshot", version: 8, routes: current, digest: tableDigest(current) });
    await waitFor(() => stream.framesOfType("ack").length > 0);
    expect(stream.framesOfType("resync")).toHaveLength(1);
    expect(stream.framesOfType("ack")).toEqual([
      { type: "ack", version: 8, digest: tableDigest(current) },
    ]);
  });

  it("asks for a snapshot, without acknowledging, when a diff's digest does not match", async () => {
    const { client, observed } = startClient();
    await client.start();
    const stream = await connectedStream();
    const before = {
      version: client.table.version,
      digest: client.table.digest,
      routes: client.table.routes,
    };

    stream.send({
      type: "diff",
      from: 5,
      to: 6,
      upserts: [makeRoute({ version: 6 })],
      deletes: [],
      digest: "0".repeat(64),
    });

    await waitFor(() => stream.framesOfType("resync").length > 0);
    expect(stream.framesOfType("ack")).toEqual([]);
    expect({
      version: client.table.version,
      digest: client.table.digest,
      routes: client.table.routes,
    }).toEqual(before);
    expect(observed.errors.some((error) => error.name === "TableMismatchError")).toBe(true);
  });

  it("answers a snapshot whose digest does not match with a nack and keeps its table", async () => {
    const { client } = startClient();
    await client.start();
    const stream = await connectedStream();

    stream.send({ type: "snapshot", version: 9, routes: [makeRoute()], digest: "0".repeat(64) });

    const [nack] = await waitFor(
      () => stream.framesOfType("nack").length > 0 && stream.framesOfType("nack"),
    );
    expect(nack).toMatchObject({ type: "nack", version: 9 });
    expect(client.table.version).toBe(5);
    expect(stream.framesOfType("resync")).toEqual([]);
  });

  it("reconnects after the coordinator drops the stream, resuming from its version", async () => {
    const { client, observed } = startClient();
    await client.start();
    const stream = await connectedStream();
    stream.send({
      type: "diff",
      from: 5,
      to: 6,
      upserts: [],
      deletes: [],
      digest: client.table.digest,
    });
    await waitFor(() => stream.framesOfType("ack").length > 0);

    stream.socket.terminate();

    await connectedStream(1);
    expect(fake.upgrades.map((upgrade) => upgrade.since)).toEqual(["5", "6"]);
    expect(fake.registrations).toHaveLength(1);
    expect(observed.disconnected).toEqual([{ code: 1006, reason: "" }]);
  });

  it("takes a stream that stays silent for three heartbeats for dead, and reconnects", async () => {
    fake.heartbeatIntervalS = 0.05;
    const { client, observed } = startClient();
    await client.start();
    await connectedStream();

    await connectedStream(1);
    expect(observed.disconnected[0]?.code).toBe(1006);
    expect(observed.errors.some((error) => error.message.includes("silent"))).toBe(true);
  });

  it("registers again, under its new identity, when the stream answers 404", async () => {
    fake.identities = [
      { id: "w-1", token: "worker-token-1" },
      { id: "w-2", token: "worker-token-2" },
    ];
    const { client, observed } = startClient();

    await client.start();
    await connectedStream();
    fake.remove("w-1");
    const stream = await connectedStream(1);

    expect(stream.workerId).toBe("w-2");
    expect(fake.registrations).toHaveLength(2);
    // It offered its old token; the coordinator no longer knew the name and made a new worker.
    expect(fake.registrations[1]?.headers["x-worker-token"]).toBe("worker-token-1");
    expect(client.workerId).toBe("w-2");
    expect(client.workerToken).toBe("worker-token-2");
    expect(observed.registered.map((event) => event.previousWorkerId)).toEqual([null, "w-1"]);
    expect(fake.upgrades.at(-1)).toMatchObject({
      workerId: "w-2",
      authorization: "Bearer worker-token-2",
    });
  });

  it("registers a known name again as itself with the worker token it was given", async () => {
    const first = startClient();
    await first.client.start();
    expect(first.client.workerToken).toBe("worker-token-1");
    expect(fake.registrations[0]?.headers["x-worker-token"]).toBeUndefined();
    await first.client.stop();

    // A restart: a new client, holding the token the worker kept.
    const { client, observed } = startClient({ workerToken: "worker-token-1" });
    await client.start();

    expect(fake.registrations).toHaveLength(2);
    expect(fake.registrations[1]?.headers["x-worker-token"]).toBe("worker-token-1");
    expect(client.workerId).toBe("w-1");
    expect(observed.registered).toMatchObject([{ workerId: "w-1", previousWorkerId: null }]);
    const open = await waitFor(
      () => fake.streams.find((stream) => stream.socket.readyState === stream.socket.OPEN),
      5000,
      "the restarted worker's stream",
    );
    expect(open.workerId).toBe("w-1");
  });

  it("is refused (409) and stops when it registers a known name without its token", async () => {
    const first = startClient();
    await first.client.start();
    await first.client.stop();

    const { client, observed } = startClient();
    await expect(client.start()).rejects.toMatchObject({ name: "RegistrationError", status: 409 });
    expect(observed.stopped).toMatchObject([{ cause: "registration_refused" }]);
  });

  it("stops, without reconnecting, when another stream of the worker replaces it (4000)", async () => {
    const { client, observed } = startClient();
    await client.start();
    const stream = await connectedStream();

    stream.socket.close(4000, "replaced by another stream");

    await waitFor(() => observed.stopped.length > 0);
    expect(observed.disconnected).toEqual([{ code: 4000, reason: "replaced by another stream" }]);
    expect(observed.stopped).toEqual([{ cause: "replaced" }]);
    expect(fake.upgrades).toHaveLength(1);
    await client.stop();
  });

  it("sends activity as one frame, at most every activityIntervalMs", async () => {
    const intervalMs = 400;
    const { client } = startClient({ activityIntervalMs: intervalMs });
    await client.start();
    const stream = await connectedStream();
    const [first, second] = routes as [Route, Route];
    const t0 = Date.parse("2030-01-01T00:00:00.000Z");

    client.reportActivity(first.id, new Date(t0));
    client.reportActivity(second.id, new Date(t0 + 1000));
    client.reportActivity(first.id, new Date(t0 + 2000));
    client.reportActivity(first.id, new Date(t0 + 500)); // older than what is known: no effect

    await waitFor(() => stream.framesOfType("activity").length === 1);
    client.reportActivity(second.id, new Date(t0 + 3000));
    await waitFor(() => stream.framesOfType("activity").length === 2);

    expect(stream.framesOfType("activity")).toEqual([
      {
        type: "activity",
        routes: {
          [first.id]: new Date(t0 + 2000).toISOString(),
          [second.id]: new Date(t0 + 1000).toISOString(),
        },
      },
      { type: "activity", routes: { [second.id]: new Date(t0 + 3000).toISOString() } },
    ]);
    const [sentFirst, sentSecond] = stream.frames
      .filter((record) => record.frame.type === "activity")
      .map((record) => record.receivedAt) as [number, number];
    // Arrival times carry the network's jitter, hence the wide margin; unthrottled, the second
    // frame would follow the first within a few milliseconds.
    expect(sentSecond - sentFirst).toBeGreaterThanOrEqual(intervalMs / 2);
  });

  it("stop() closes the stream with 1000, sends pending activity, and leaves no timer", async () => {
    const timersBefore = activeTimers();
    const { client, observed } = startClient({ activityIntervalMs: 60_000 });
    await client.start();
    const stream = await connectedStream();
    const [first] = routes as [Route];
    client.reportActivity(first.id); // sent at once: the first frame is due immediately
    await waitFor(() => stream.framesOfType("activity").length === 1);
    client.reportActivity(first.id); // held back for a minute, unless stop() flushes it

    await Promise.all([client.stop(), client.stop()]);
    await client.stop();

    await waitFor(() => stream.closeCode !== undefined);
    expect(stream.closeCode).toBe(1000);
    expect(stream.framesOfType("activity")).toHaveLength(2);
    expect(observed.stopped).toEqual([{ cause: "stopped" }]);
    await waitFor(() => activeTimers() <= timersBefore, 5000, "the client's timers to be gone");
  });

  it("stop() during registration retries settles start() and leaves no timer", async () => {
    const timersBefore = activeTimers();
    fake.registrationStatus = 503;
    const { client, observed } = startClient({ reconnectMinMs: 5_000, reconnectMaxMs: 5_000 });

    const started = client.start();
    await waitFor(() => fake.registrations.length > 0 && observed.errors.length > 0);
    await client.stop();

    await expect(started).resolves.toBeUndefined();
    expect(observed.stopped).toEqual([{ cause: "stopped" }]);
    await waitFor(() => activeTimers() <= timersBefore, 5000, "the client's timers to be gone");
  });

  it("rejects start() when the coordinator refuses the registration for good", async () => {
    fake.registrationStatus = 401;
    const { client, observed } = startClient();

    await expect(client.start()).rejects.toMatchObject({ name: "RegistrationError", status: 401 });
    expect(observed.stopped).toMatchObject([{ cause: "registration_refused" }]);
    expect(fake.registrations).toHaveLength(1);
  });
});
