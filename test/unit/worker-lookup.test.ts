import { describe, expect, it } from "vitest";
import { WorkerLookup, type NumberStreams } from "../../src/sync/worker-lookup.js";

const A = "aaaaaaaa-0000-4000-8000-000000000000";
const B = "bbbbbbbb-0000-4000-8000-000000000000";
const X = "eeeeeeee-0000-4000-8000-000000000000";
const Y = "ffffffff-0000-4000-8000-000000000000";

/** A stand-in for the `workers` table and the stream sequence: each read it served, and a gate. */
function fakeWorkers(ids: string[]) {
  const reads: string[][] = [];
  let failNext = false;
  let next = 0;
  let release: (() => void) | undefined;
  const numberStreams: NumberStreams = async (asked) => {
    reads.push(asked);
    await new Promise<void>((r) => (release = r));
    if (failNext) {
      failNext = false;
      throw new Error("connection lost");
    }
    return asked.map((id) => (ids.includes(id) ? ++next : undefined));
  };
  /** Lets the read under way answer, once one has begun (within a deadline). */
  const settle = async () => {
    const deadline = Date.now() + 5000;
    while (!release) {
      if (Date.now() > deadline) throw new Error("no read began");
      await new Promise((r) => setImmediate(r));
    }
    const r = release;
    release = undefined;
    r();
  };
  return { numberStreams, reads, settle, failOnce: () => (failNext = true) };
}

describe("admitting stream upgrades", () => {
  it("numbers the streams asked for in one moment with one read, and those asked meanwhile with the next", async () => {
    const db = fakeWorkers([A, B]);
    const lookup = new WorkerLookup(db.numberStreams);
    const first = [lookup.admit(A), lookup.admit(X), lookup.admit(A)];
    await db.settle();
    // Each stream its own number, a worker's second stream included; none for an unknown worker.
    expect(await Promise.all(first)).toEqual([1, undefined, 2]);
    expect(db.reads).toEqual([[A, X, A]]);

    const during = lookup.admit(B);
    await new Promise((r) => setImmediate(r)); // the read has begun
    const meanwhile = [lookup.admit(A), lookup.admit(Y)];
    await db.settle();
    expect(await during).toBe(3);
    await db.settle();
    expect(await Promise.all(meanwhile)).toEqual([4, undefined]);
    expect(db.reads).toEqual([[A, X, A], [B], [A, Y]]);
  });

  it("refuses an id no worker can have without asking the database", async () => {
    const db = fakeWorkers([A]);
    const lookup = new WorkerLookup(db.numberStreams);
    expect(await lookup.admit("------------------------------------")).toBeUndefined();
    expect(db.reads).toEqual([]);
  });

  it("fails only the questions of a read that failed", async () => {
    const db = fakeWorkers([A]);
    const lookup = new WorkerLookup(db.numberStreams);
    db.failOnce();
    const failed = lookup.admit(A);
    await db.settle();
    await expect(failed).rejects.toThrow("connection lost");
    const next = lookup.admit(A);
    await db.settle();
    expect(await next).toBe(1);
  });
});
