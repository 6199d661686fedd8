import { describe, expect, it } from "vitest";
import {
  EMPTY_TABLE_DIGEST,
  RoutingTable,
  tableDigest,
  type Route,
} from "../../src/client/index.js";
import { makeRoute } from "./route-factory.js";

function tableAt(version: number, routes: Route[]): RoutingTable {
  const table = new RoutingTable();
  const outcome = table.applySnapshot(version, routes);
  if (!outcome.applied) throw new Error("setup snapshot refused");
  return table;
}

function stateOf(table: RoutingTable): unknown {
  return { version: table.version, digest: table.digest, routes: table.routes };
}

describe("RoutingTable", () => {
  it("starts empty at version 0", () => {
    const table = new RoutingTable();
    expect(table.version).toBe(0);
    expect(table.size).toBe(0);
    expect(table.digest).toBe(EMPTY_TABLE_DIGEST);
  });

  describe("applySnapshot", () => {
    it("replaces the table and reports what changed", () => {
      const kept = makeRoute();
      const dropped = makeRoute();
      const table = tableAt(5, [kept, dropped]);
      const added = makeRoute();
      const changed = { ...kept, version: 9, url: "http://elsewhere/" };

      const outcome = table.applySnapshot(9, [changed, added]);

      expect(outcome.applied).toBe(true);
      if (!outcome.applied) return;
      expect(outcome.change).toEqual({
        from: 5,
        to: 9,
        upserts: [changed, added],
        deletes: [dropped.id],
      });
      expect(table.version).toBe(9);
      expect(table.digest).toBe(tableDigest([changed, added]));
      expect(table.get(kept.id)).toEqual(changed);
      expect(table.get(dropped.id)).toBeUndefined();
    });

    it("does not report unchanged routes as upserts", () => {
      const route = makeRoute();
      const table = tableAt(3, [route]);
      const outcome = table.applySnapshot(3, [{ ...route }]);
      expect(outcome.applied && outcome.change).toEqual({
        from: 3,
        to: 3,
        upserts: [],
        deletes: [],
      });
    });

    it("refuses a snapshot whose routes do not hash to its digest, and changes nothing", () => {
      const table = tableAt(4, [makeRoute()]);
      const before = stateOf(table);
      const routes = [makeRoute()];

      const outcome = table.applySnapshot(8, routes, "0".repeat(64));

      expect(outcome).toEqual({
        applied: false,
        mismatch: {
          kind: "digest",
          version: 8,
          expected: "0".repeat(64),
          actual: tableDigest(routes),
        },
      });
      expect(stateOf(table)).toEqual(before);
    });

    it("accepts a snapshot whose digest matches", () => {
      const routes = [makeRoute(), makeRoute()];
      const table = new RoutingTable();
      expect(table.applySnapshot(2, routes, tableDigest(routes)).applied).toBe(true);
    });
  });

  describe("applyDiff", () => {
    it("applies deletes and upserts at once and reports the effective change", () => {
      const a = makeRoute();
      const b = makeRoute();
      const table = tableAt(10, [a, b]);
      const c = makeRoute();
      const bChanged = { ...b, version: 12, upstreams: [{ host: "10.0.0.9", port: 1, weight: 2 }] };
      const expected = [a, bChanged, c].filter((route) => route.id !== a.id);

      const outcome = table.applyDiff({
        from: 10,
        to: 12,
        upserts: [bChanged, c],
        deletes: [a.id, "not-in-the-table"],
        digest: tableDigest(expected),
      });

      expect(outcome.applied).toBe(true);
      if (!outcome.applied) return;
      expect(outcome.change).toEqual({ from: 10, to: 12, upserts: [bChanged, c], deletes: [a.id] });
      expect(table.version).toBe(12);
      expect(table.routes.map((route) => route.id)).toEqual([b.id, c.id]);
      expect(table.digest).toBe(tableDigest(expected));
    });

    it("keeps a route that is both deleted and upserted (moved away and back)", () => {
      const a = makeRoute();
      const table = tableAt(1, [a]);
      const back = { ...a, version: 3 };
      const outcome = table.applyDiff({
        from: 1,
        to: 3,
        upserts: [back],
        deletes: [a.id],
        digest: tableDigest([back]),
      });
      expect(outcome.applied && outcome.change.deletes).toEqual([]);
      expect(table.get(a.id)).toEqual(back);
    });

    it("advances the version on a diff without changes", () => {
      const route = makeRoute();
      const table = tableAt(1, [route]);
      const outcome = table.applyDiff({
        from: 1,
        to: 2,
        upserts: [],
        deletes: [],
        digest: table.digest,
      });
      expect(outcome.applied).toBe(true);
      expect(table.version).toBe(2);
    });

    it("refuses a diff that does not start at the table's version, and changes nothing", () => {
      const table = tableAt(7, [makeRoute()]);
      const before = stateOf(table);
      const upsert = makeRoute();

      const outcome = table.applyDiff({
        from: 6,
        to: 8,
        upserts: [upsert],
        deletes: [],
        digest: "x",
      });

      expect(outcome).toEqual({
        applied: false,
        mismatch: { kind: "from", tableVersion: 7, from: 6 },
      });
      expect(stateOf(table)).toEqual(before);
    });

    it("refuses a diff whose result does not match its digest, and changes nothing", () => {
      const existing = makeRoute();
      const table = tableAt(7, [existing]);
      const before = stateOf(table);
      const upsert = makeRoute();

      const outcome = table.applyDiff({
        from: 7,
        to: 8,
        upserts: [upsert],
        deletes: [existing.id],
        digest: tableDigest([existing, upsert]),
      });

      expect(outcome.applied).toBe(false);
      expect(!outcome.applied && outcome.mismatch.kind).toBe("digest");
      expect(stateOf(table)).toEqual(before);
    });

    it("refuses a diff that goes backwards", () => {
      const table = tableAt(7, []);
      const outcome = table.applyDiff({
        from: 7,
        to: 6,
        upserts: [],
        deletes: [],
        digest: table.digest,
      });
      expect(outcome).toEqual({ applied: false, mismatch: { kind: "backwards", from: 7, to: 6 } });
      expect(table.version).toBe(7);
    });
  });

  describe("a run of random diffs", () => {
    /** Ids whose UTF-16 and UTF-8 orders differ: a surrogate pair against U+E000–U+FFFF. */
    const ids = ["a", "B", "z", "\u{1F600}x", "\uE000y", "\uFFFDz", "é", "00", "0", "\u{10000}"];

    it("keeps the digest of the whole table, and a refused diff changes nothing", () => {
      let seed = 7;
      const random = (n: number): number => {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        return seed % n;
      };
      const table = new RoutingTable();
      const truth = new Map<string, Route>();
      for (let version = 1; version <= 300; version++) {
        const upserts: Route[] = [];
        const deletes: string[] = [];
        for (let k = random(4); k >= 0; k--) {
          const id = ids[random(ids.length)]!;
          if (random(3) === 0) deletes.push(id);
          else upserts.push(makeRoute({ id, version }));
        }
        const expected = new Map(truth);
        for (const id of deletes) expected.delete(id);
        for (const route of upserts) expected.set(route.id, route);
        const digest = tableDigest(expected.values());

        if (random(5) === 0) {
          const before = stateOf(table);
          const refused = table.applyDiff({
            from: table.version,
            to: version,
            upserts,
            deletes,
            digest: tableDigest([makeRoute({ id: "other", version })]),
          });
          expect(refused.applied).toBe(false);
          expect(stateOf(table)).toEqual(before);
          continue;
        }
        const outcome = table.applyDiff({
          from: table.version,
          to: version,
          upserts,
          deletes,
          digest,
        });
        expect(outcome.applied).toBe(true);
        truth.clear();
        for (const [id, route] of expected) truth.set(id, route);
        expect(table.digest).toBe(digest);
        expect(table.size).toBe(truth.size);
      }
    });
  });
});
