import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../src/db/database.js";
import { validate } from "../../src/http/validate.js";
import { markLostIfVanished } from "../../src/liveness/repository.js";
import { createLogger } from "../../src/logger.js";
import { PresenceWriter } from "../../src/sync/presence.js";
import type { WorkerRow } from "../../src/workers/model.js";
import { findWorker, insertWorker, numberStreams } from "../../src/workers/repository.js";
import { registerSchema, type Registration } from "../../src/workers/schema.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

/** Random interleavings tried, and presence writes in each. */
const RUNS = 25;
const STEPS = 12;

let testDb: TestDatabase;
let db: Database;
let instances: PresenceWriter[];

beforeAll(async () => {
  testDb = await createTestDatabase();
  db = await testDb.open();
  const logger = createLogger("error", true);
  instances = ["instance-a", "instance-b"].map((id) => new PresenceWriter(db.knex, id, logger));
});

afterAll(async () => {
  await Promise.all(instances?.map((p) => p.stop()) ?? []);
  await testDb?.drop();
});

/** mulberry32: the same seed, the same interleaving, so that a failure can be replayed. */
function seeded(seed: number): (n: number) => number {
  let a = seed;
  return (n) => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return Math.floor((((t ^ (t >>> 14)) >>> 0) / 4294967296) * n);
  };
}

interface Stream {
  seq: number;
  instance: number;
  opened: boolean;
  closed: boolean;
}

async function newWorker(): Promise<string> {
  const registration = validate<Registration>(registerSchema.required(), {
    name: `order-${randomUUID().slice(0, 8)}`,
    advertised_host: "127.0.0.1",
    frontend_mode: "port",
    port_range: [30000, 30009],
    protocols: ["http"],
  });
  const id = randomUUID();
  await db.knex.transaction((tx) => insertWorker(tx, id, registration, new Date()));
  return id;
}

/** The reaper's decision as one conditional write, with the worker gone long enough ago. */
async function reap(id: string): Promise<void> {
  const now = new Date(Date.now() + 60_000);
  const rule = { lostAfterS: 1, connectedStaleAfterS: 3600, notBefore: new Date(0) };
  await db.knex.transaction((tx) => markLostIfVanished(tx, id, now, rule, now));
}

/**
 * What the row must say, whatever order the writes landed in: the newest stream whose start or
 * end was recorded decides. Open, it holds the worker (alive, unless a reaper run marked it
 * lost before that start landed, which the start undoes); closed, nobody does.
 */
function expectDecidedByNewest(row: WorkerRow, streams: Stream[], run: number): void {
  const recorded = streams.filter((s) => s.opened || s.closed);
  const newest = recorded.reduce<Stream | undefined>(
    (n, s) => (!n || s.seq > n.seq ? s : n),
    undefined,
  );
  const where = `run ${run}, streams ${JSON.stringify(streams)}`;
  if (newest && newest.opened && !newest.closed) {
    expect(row.connected_instance, where).toBe(`instance-${"ab"[newest.instance]}`);
    expect(row.status, where).toBe("alive");
  } else {
    expect(row.connected_instance, where).toBeNull();
  }
  if (row.status === "lost") expect(row.connected_instance, where).toBeNull();
}

describe("a worker's presence under any order of its writes", () => {
  it("is what its newest stream says, whatever the reaper did between the writes", async () => {
    for (let run = 0; run < RUNS; run++) {
      const random = seeded(run + 1);
      const id = await newWorker();
      const streams: Stream[] = [];
      for (let step = 0; step < STEPS; step++) {
        const choice = random(4);
        const pending = streams.filter((s) => !s.opened || !s.closed);
        if (choice === 0 || pending.length === 0) {
          // A stream is admitted (numbered) on either instance; its writes come later.
          const [seq] = await numberStreams(db.knex, [id]);
          streams.push({ seq: seq!, instance: random(2), opened: false, closed: false });
        } else if (choice === 3) {
          await reap(id);
        } else {
          // One stream's next write lands: its start, or its end after its start (as an
          // instance writes them), in any order among streams and instances.
          const s = pending[random(pending.length)]!;
          const writer = instances[s.instance]!;
          if (!s.opened) {
            await writer.connected(id, s.seq, new Date());
            s.opened = true;
          } else {
            await writer.disconnected(id, s.seq, new Date());
            s.closed = true;
          }
        }
        expectDecidedByNewest((await findWorker(db.knex, id))!, streams, run);
      }
      // And a reaper run afterwards leaves a worker with an open newest stream alone, and marks
      // any other lost.
      await reap(id);
      const row = (await findWorker(db.knex, id))!;
      expectDecidedByNewest(row, streams, run);
      const newest = streams.filter((s) => s.opened || s.closed).at(-1);
      if (newest?.opened && !newest.closed) expect(row.status).toBe("alive");
      else expect(row.status).toBe("lost");
    }
  });
});
