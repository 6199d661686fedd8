import type { Knex } from "knex";
import { describe, expect, it } from "vitest";
import { WorkerLookup } from "../../src/sync/worker-lookup.js";

/** A stand-in for the `workers` table: the ids it holds, each read it served, and a gate. */
function fakeWorkers(ids: string[]) {
  const reads: string[][] = [];
  let failNext = false;
  let release: (() => void) | undefined;
  const knex = ((table: string) => {
    expect(table).toBe("workers");
    return {
      whereIn: async (_column: string, asked: string[]) => {
        reads.push(asked);
        await new Promise<void>((r) => (release = r));
        if (failNext) {
          failNext = false;
          throw new Error("connection lost");
        }
        return asked.filter((id) => ids.includes(id)).map((id) => ({ id }));
      },
    };
  }) as unknown as Knex;
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
  return { knex, reads, settle, failOnce: () => (failNext = true) };
}

describe("looking workers up for stream upgrades", () => {
  it("answers the questions of one moment with one read, and those asked meanwhile with the next", async () => {
    const db = fakeWorkers(["a", "b"]);
    const lookup = new WorkerLookup(db.knex);
    const first = [lookup.exists("a"), lookup.exists("x"), lookup.exists("a")];
    await db.settle();
    expect(await Promise.all(first)).toEqual([true, false, true]);
    expect(db.reads).toEqual([["a", "x"]]);

    const during = lookup.exists("b");
    await new Promise((r) => setImmediate(r)); // the read has begun
    const meanwhile = [lookup.exists("a"), lookup.exists("y")];
    await db.settle();
    expect(await during).toBe(true);
    await db.settle();
    expect(await Promise.all(meanwhile)).toEqual([true, false]);
    expect(db.reads).toEqual([["a", "x"], ["b"], ["a", "y"]]);
  });

  it("fails only the questions of a read that failed", async () => {
    const db = fakeWorkers(["a"]);
    const lookup = new WorkerLookup(db.knex);
    db.failOnce();
    const failed = lookup.exists("a");
    await db.settle();
    await expect(failed).rejects.toThrow("connection lost");
    const next = lookup.exists("a");
    await db.settle();
    expect(await next).toBe(true);
  });
});
