import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startHarness } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";
import { RawStream, expectedDigest, routesOfWorker, type Frame } from "./stream-client.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

let h: Harness;
let w: WorkerAnswer;
let other: WorkerAnswer;
let third: WorkerAnswer;
const streams: RawStream[] = [];

beforeAll(async () => {
  // Workers here miss changes without a stream: the reaper must not count them lost meanwhile.
  // An untouched worker's empty diff comes within HEARTBEAT_INTERVAL_S: a short one keeps it quick.
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600", HEARTBEAT_INTERVAL_S: "2" });
  w = await registerWorker(h.registration, portWorker({ port_range: [20000, 20999] }));
  other = await registerWorker(h.registration, portWorker({ port_range: [21000, 21999] }));
  third = await registerWorker(h.registration, portWorker({ port_range: [22000, 22999] }));
});
afterEach(async () => {
  await Promise.all(streams.splice(0).map((s) => s.close()));
});
afterAll(() => h?.close());

async function open(worker: WorkerAnswer, since?: number): Promise<RawStream> {
  const stream = await RawStream.open(h.url, worker.worker.id, worker.token, since);
  streams.push(stream);
  return stream;
}

function versionOf(res: { headers: Headers }): number {
  return Number(res.headers.get("x-routing-version"));
}

/** A mutation that must succeed; answers the version it took. */
async function mutate(
  method: "POST" | "PATCH" | "DELETE",
  path: string,
  body?: unknown,
): Promise<{ version: number; body: unknown }> {
  const res = await h.manager.request(method, path, body);
  expect(res.status, `${method} ${path}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
  return { version: versionOf(res), body: res.body };
}

/** The worker's table after applying `frame` to `table` (a snapshot replaces it). */
function apply(table: Map<string, RouteAnswer>, frame: Frame): Map<string, RouteAnswer> {
  const next = frame.type === "snapshot" ? new Map<string, RouteAnswer>() : new Map(table);
  if (frame.type === "diff") for (const id of frame.deletes as string[]) next.delete(id);
  const routes = (frame.type === "snapshot" ? frame.routes : frame.upserts) as RouteAnswer[];
  for (const r of routes) next.set(r.id, r);
  return next;
}

const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

describe("resuming with since", () => {
  it("replays 100 missed changes as exactly one diff, after which the worker holds the coordinator's table", async () => {
    for (let i = 0; i < 5; i++)
      await mutate("POST", "/routes", routeBody({ worker_id: w.worker.id }));
    const first = await open(w);
    await first.expect("hello");
    const snapshot = await first.expect("snapshot");
    let table = apply(new Map(), snapshot);
    first.send({ type: "ack", version: snapshot.version, digest: snapshot.digest });
    await first.close();
    const since = snapshot.version as number;

    // 100 changes while the worker is away, each taking one version: creates, patches and
    // deletes of its routes, changes to other workers only, batches spanning workers, a session
    // removal, and routes moved onto it by a drain.
    const mine = [...table.keys()];
    let lastBatchSession = "";
    let head = since;
    for (let i = 0; i < 100; i++) {
      let res: { version: number; body: unknown };
      switch (i % 10) {
        case 0:
        case 1:
        case 2:
          res = await mutate("POST", "/routes", routeBody({ worker_id: w.worker.id }));
          mine.push((res.body as RouteAnswer).id);
          break;
        case 3:
          res = await mutate("PATCH", `/routes/${mine[i % mine.length]}`, {
            labels: { step: String(i) },
            upstreams: [{ host: "10.0.0.7", port: 9000 + i, weight: 2 }],
          });
          break;
        case 4:
          res = await mutate("DELETE", `/routes/${mine.shift()}`);
          break;
        case 5:
          res = await mutate("POST", "/routes", routeBody({ worker_id: other.worker.id }));
          break;
        case 6:
          lastBatchSession = `batch-${i}`;
          res = await mutate("POST", "/routes/batch", {
            routes: [
              routeBody({ session_id: lastBatchSession, worker_id: w.worker.id }),
              routeBody({ session_id: lastBatchSession, worker_id: w.worker.id }),
              routeBody({ session_id: lastBatchSession, worker_id: other.worker.id }),
            ],
          });
          break;
        case 7:
          res = await mutate("POST", "/routes", routeBody({ worker_id: third.worker.id }));
          break;
        case 8:
          res = await mutate("DELETE", `/routes?session_id=${lastBatchSession}`);
          break;
        default:
          res = await mutate("POST", `/workers/${third.worker.id}/drain?migrate=true`);
          await mutate("POST", `/workers/${third.worker.id}/undrain`);
      }
      expect(res.version, `change ${i}`).toBe(head + 1);
      head = res.version;
    }
    expect(head).toBe(since + 100);

    const back = await open(w, since);
    await back.expect("hello");
    const diff = await back.expect("diff", 10_000);
    expect(diff).toMatchObject({ from: since, to: head });
    table = apply(table, diff);

    const expected = await routesOfWorker<RouteAnswer>(h.admin, w.worker.id);
    expect([...table.values()].sort(byId)).toEqual([...expected].sort(byId));
    expect(diff.digest).toBe(expectedDigest(expected));
    expect(expectedDigest(table.values())).toBe(diff.digest);

    // Nothing else came after that diff: the next frame is the one for the next change.
    const { version } = await mutate("POST", "/routes", routeBody({ worker_id: other.worker.id }));
    const next = await back.next(5000);
    expect(next).toEqual({
      type: "diff",
      from: head,
      to: version,
      upserts: [],
      deletes: [],
      digest: diff.digest,
    });
    expect(back.frames.map((f) => f.type)).toEqual(["hello", "diff", "diff"]);
  });

  it("answers a since at the head with a diff that changes nothing", async () => {
    const { version } = await mutate("POST", "/routes", routeBody({ worker_id: w.worker.id }));
    const stream = await open(w, version);
    await stream.expect("hello");
    expect(await stream.next()).toEqual({
      type: "diff",
      from: version,
      to: version,
      upserts: [],
      deletes: [],
      digest: expectedDigest(await routesOfWorker(h.admin, w.worker.id)),
    });
  });

  it("sends a snapshot when since is ahead of the coordinator's head", async () => {
    const { version } = await mutate("POST", "/routes", routeBody({ worker_id: w.worker.id }));
    const stream = await open(w, version + 1000);
    await stream.expect("hello");
    const snapshot = await stream.expect("snapshot");
    const expected = await routesOfWorker<RouteAnswer>(h.admin, w.worker.id);
    expect(snapshot.version).toBe(version);
    expect((snapshot.routes as RouteAnswer[]).sort(byId)).toEqual(expected.sort(byId));
    expect(snapshot.digest).toBe(expectedDigest(expected));
  });

  // Runs last: it trims the change log of this file's database.
  it("sends a snapshot when since is older than the change log holds, a diff from the floor on", async () => {
    for (let i = 0; i < 10; i++)
      await mutate("POST", "/routes", routeBody({ worker_id: w.worker.id }));
    const { version: head } = await mutate(
      "POST",
      "/routes",
      routeBody({ worker_id: w.worker.id }),
    );
    const floor = head - 5;
    // The reaper's change-log trim (CHANGELOG_RETENTION) is not there yet, and waiting for 100 000
    // versions is no test: do here what the trim does, drop the entries at or below the floor
    // and record the floor, in one transaction as a trim would.
    await h.database.knex.transaction(async (tx) => {
      await tx("change_entries").where("version", "<=", floor).delete();
      await tx("routing_state").where({ id: 1 }).update({ changelog_floor: floor });
    });
    const expected = await routesOfWorker<RouteAnswer>(h.admin, w.worker.id);

    const old = await open(w, floor - 1);
    await old.expect("hello");
    const snapshot = await old.expect("snapshot");
    expect(snapshot.version).toBe(head);
    expect((snapshot.routes as RouteAnswer[]).sort(byId)).toEqual([...expected].sort(byId));
    expect(snapshot.digest).toBe(expectedDigest(expected));
    await old.close();

    const atFloor = await open(w, floor);
    await atFloor.expect("hello");
    const diff = await atFloor.expect("diff");
    expect(diff).toMatchObject({ from: floor, to: head, deletes: [] });
    expect((diff.upserts as RouteAnswer[]).length).toBe(5);
    expect(diff.digest).toBe(expectedDigest(expected));
  });
});
