import type { Knex } from "knex";
import { describe, expect, it, vi } from "vitest";
import { PropagationWatch } from "../../src/versioning/propagation.js";
import { waitFor } from "../client/wait-for.js";

/** A stand-in for the `workers` table: the applied versions it holds, and how often it was read. */
function fakeDatabase(applied: Record<string, number>) {
  const reads: string[][] = [];
  /** While set, each read fails with this error, or (for "hang") never answers. */
  const outage: { error?: Error | "hang" } = {};
  const knex = ((table: string) => {
    expect(table).toBe("workers");
    return {
      whereIn: (_column: string, ids: string[]) => ({
        select: async () => {
          reads.push(ids);
          if (outage.error === "hang") return new Promise(() => undefined);
          if (outage.error) throw outage.error;
          return ids.flatMap((id) =>
            applied[id] === undefined ? [] : [{ id, applied_version: applied[id] }],
          );
        },
      }),
    };
  }) as unknown as Knex;
  return { knex, reads, applied, outage };
}

describe("waiting until workers applied a version", () => {
  it("answers at once for a worker that acknowledged it on this instance, without a query", async () => {
    const db = fakeDatabase({});
    const watch = new PropagationWatch(db.knex);
    watch.acknowledged("w1", 10);
    expect(await watch.waitApplied(10, ["w1"], 1000)).toBe(true);
    expect(await watch.waitApplied(9, ["w1"], 1000)).toBe(true);
    expect(db.reads).toEqual([]);
  });

  it("is woken by an acknowledgement here before it asks the database", async () => {
    const db = fakeDatabase({ w1: 3 });
    const watch = new PropagationWatch(db.knex);
    const waiting = watch.waitApplied(11, ["w1"], 1000);
    setImmediate(() => watch.acknowledged("w1", 11));
    expect(await waiting).toBe(true);
    expect(db.reads).toEqual([]);
  });

  it("asks the database for workers acknowledging elsewhere, and counts removed ones as done", async () => {
    const db = fakeDatabase({ w1: 3, w2: 3 });
    const watch = new PropagationWatch(db.knex);
    const waiting = watch.waitApplied(12, ["w1", "w2", "gone"], 5000);
    // Another instance records the acknowledgements in the database.
    setTimeout(() => {
      db.applied.w1 = 12;
      db.applied.w2 = 13;
    }, 20);
    expect(await waiting).toBe(true);
    expect(db.reads.length).toBeGreaterThan(0);
    expect(db.reads[0]).toEqual(["w1", "w2", "gone"]);
  });

  it("gives up at the deadline when a worker never applies the version", async () => {
    const db = fakeDatabase({ w1: 3 });
    const watch = new PropagationWatch(db.knex);
    watch.acknowledged("w1", 5);
    expect(await watch.waitApplied(6, ["w1"], 30)).toBe(false);
  });

  it("forgets a removed worker's acknowledgements", async () => {
    const db = fakeDatabase({});
    const watch = new PropagationWatch(db.knex);
    watch.acknowledged("w1", 10);
    watch.forget("w1");
    // Not known here any more; the database no longer has it either: done after one read.
    expect(await watch.waitApplied(10, ["w1"], 1000)).toBe(true);
    expect(db.reads).toEqual([["w1"]]);
  });

  it("is woken only by acknowledgements of its own workers, and leaves no listener behind", async () => {
    const db = fakeDatabase({ w1: 3, w2: 3, w3: 3 });
    const watch = new PropagationWatch(db.knex);
    let settled = false;
    const waiting = watch.waitApplied(20, ["w1", "w2"], 1000).then((ok) => {
      settled = true;
      return ok;
    });
    const other = watch.waitApplied(20, ["w3"], 1000);
    expect(watch.watchedWorkers).toBe(3);
    watch.acknowledged("w1", 20);
    watch.acknowledged("w3", 20);
    watch.acknowledged("w2", 19); // an older version does not count
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    expect(await other).toBe(true);
    watch.acknowledged("w2", 21);
    expect(await waiting).toBe(true);
    expect(watch.watchedWorkers).toBe(0);
  });

  it("asks the database about workers streaming here only now and then", async () => {
    const db = fakeDatabase({ w1: 3, w2: 3 });
    const watch = new PropagationWatch(db.knex);
    watch.followStreams((id) => id === "w1");
    // w1's acknowledgement arrives here 40 ms on, after polls would have begun: no query for it.
    // (Fake clocks: the 40 ms are exact, whatever else the machine is doing.)
    vi.useFakeTimers();
    try {
      const local = watch.waitApplied(30, ["w1"], 5000);
      await vi.advanceTimersByTimeAsync(40);
      watch.acknowledged("w1", 30);
      expect(await local).toBe(true);
    } finally {
      vi.useRealTimers();
    }
    expect(db.reads).toEqual([]);
    // Its stream moved elsewhere unnoticed: the acknowledgement is found in the database.
    db.applied.w1 = 31;
    expect(await watch.waitApplied(31, ["w1"], 5000)).toBe(true);
    expect(db.reads).toEqual([["w1"]]);
    // A worker streaming elsewhere is asked about at once.
    db.applied.w2 = 31;
    expect(await watch.waitApplied(31, ["w2"], 5000)).toBe(true);
    expect(db.reads).toEqual([["w1"], ["w2"]]);
  });

  it("waits on through a database that cannot be read, and reports that once", async () => {
    const db = fakeDatabase({ w1: 3 });
    const errors: unknown[] = [];
    const watch = new PropagationWatch(db.knex, (error) => errors.push(error));
    db.outage.error = new Error("Connection terminated unexpectedly");
    const waiting = watch.waitApplied(40, ["w1"], 5000);
    await waitFor(() => db.reads.length >= 3, 2000, "three failed reads");
    // The database is back, and says another instance's worker applied the version.
    db.applied.w1 = 40;
    delete db.outage.error;
    expect(await waiting).toBe(true);
    expect(errors).toHaveLength(1);
  });

  it("answers pending at the deadline, never rejects, while the database fails or hangs", async () => {
    for (const failure of [new Error("database is not currently accepting connections"), "hang"]) {
      const db = fakeDatabase({ w1: 3 });
      const watch = new PropagationWatch(db.knex);
      db.outage.error = failure as Error | "hang";
      vi.useFakeTimers();
      try {
        const waiting = watch.waitApplied(41, ["w1"], 1000);
        let settled: boolean | undefined;
        void waiting.then((ok) => (settled = ok));
        await vi.advanceTimersByTimeAsync(999);
        expect(settled, String(failure)).toBeUndefined();
        // A read under way at the deadline has 100 ms more to answer.
        await vi.advanceTimersByTimeAsync(101);
        expect(settled, String(failure)).toBe(false);
      } finally {
        vi.useRealTimers();
      }
      expect(watch.watchedWorkers).toBe(0);
    }
  });
});

describe("an acknowledgement during a read that hangs", () => {
  it("ends the wait without waiting for the read", async () => {
    const db = fakeDatabase({ w1: 3 });
    const watch = new PropagationWatch(db.knex);
    db.outage.error = "hang";
    vi.useFakeTimers();
    try {
      let settled: boolean | undefined;
      void watch.waitApplied(42, ["w1"], 30_000).then((ok) => (settled = ok));
      await vi.advanceTimersByTimeAsync(10);
      expect(db.reads).toHaveLength(1);
      watch.acknowledged("w1", 42);
      await vi.advanceTimersByTimeAsync(0);
      expect(settled).toBe(true);
    } finally {
      vi.useRealTimers();
    }
  });
});
