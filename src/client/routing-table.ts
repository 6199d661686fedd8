import { DigestedTable, tableDigest } from "./digest.js";
import type { Route } from "./route.js";

/** What one applied snapshot or diff changed in the table. */
export interface TableChange {
  from: number;
  to: number;
  /** Routes that are new or different after the change, in the order received. */
  upserts: Route[];
  /** Ids of routes that were in the table before the change and are gone after it. */
  deletes: string[];
}

/** Why a snapshot or diff was refused; the table is then exactly as it was before. */
export type TableMismatch =
  | { kind: "from"; tableVersion: number; from: number }
  | { kind: "backwards"; from: number; to: number }
  | { kind: "digest"; version: number; expected: string; actual: string };

export type ApplyOutcome =
  | { applied: true; change: TableChange; digest: string }
  | { applied: false; mismatch: TableMismatch };

export interface DiffChanges {
  from: number;
  to: number;
  upserts: readonly Route[];
  deletes: readonly string[];
  digest: string;
}

/** The table as callers outside the client may see it: read, never written. */
export interface RoutingTableView {
  readonly version: number;
  readonly digest: string;
  readonly size: number;
  /** The routes sorted by id; a fresh array on every read. */
  readonly routes: readonly Readonly<Route>[];
  get(id: string): Readonly<Route> | undefined;
}

export const EMPTY_TABLE_DIGEST = tableDigest([]);

/**
 * A worker's routing table at one version. Every change goes through `applySnapshot` or
 * `applyDiff`, which take it whole or not at all: a refused frame leaves no trace, and no reader
 * sees a half-applied one (each runs in one turn of the event loop). A diff of k routes costs k
 * map and order updates plus one hash pass for the digest, not a copy and sort of the table.
 */
export class RoutingTable implements RoutingTableView {
  #routes = new Map<string, Route>();
  #order = new DigestedTable();
  #version = 0;
  #digest = EMPTY_TABLE_DIGEST;

  get version(): number {
    return this.#version;
  }

  get digest(): string {
    return this.#digest;
  }

  get size(): number {
    return this.#routes.size;
  }

  get routes(): readonly Readonly<Route>[] {
    return [...this.#routes.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  get(id: string): Readonly<Route> | undefined {
    return this.#routes.get(id);
  }

  /**
   * Replaces the whole table with `routes` at `version`. With `expectedDigest`, a snapshot whose
   * routes do not hash to it is refused. Any version is accepted, also a lower one: a snapshot is
   * the coordinator's word on the whole table (a rebuilt coordinator may restart its versions).
   */
  applySnapshot(version: number, routes: Iterable<Route>, expectedDigest?: string): ApplyOutcome {
    const next = new Map<string, Route>();
    for (const route of routes) next.set(route.id, route);
    const order = new DigestedTable();
    order.reset(next.values());
    const digest = order.digest;
    if (expectedDigest !== undefined && digest !== expectedDigest) {
      return {
        applied: false,
        mismatch: { kind: "digest", version, expected: expectedDigest, actual: digest },
      };
    }

    const upserts = [...next.values()].filter(
      (route) => !sameRoute(this.#routes.get(route.id), route),
    );
    const deletes = [...this.#routes.keys()].filter((id) => !next.has(id));
    const change: TableChange = { from: this.#version, to: version, upserts, deletes };
    this.#routes = next;
    this.#order = order;
    this.#version = version;
    this.#digest = digest;
    return { applied: true, change, digest };
  }

  /**
   * Applies the changes of versions `from + 1 … to`. Refused, with the table untouched, when
   * `from` is not this table's version or when the result does not hash to `digest`. Deletes are
   * applied before upserts, so a route both moved away and back within the range stays.
   */
  applyDiff(diff: DiffChanges): ApplyOutcome {
    if (diff.from !== this.#version) {
      return {
        applied: false,
        mismatch: { kind: "from", tableVersion: this.#version, from: diff.from },
      };
    }
    if (diff.to < diff.from) {
      return { applied: false, mismatch: { kind: "backwards", from: diff.from, to: diff.to } };
    }

    // Applied in place; what each touched route was before is kept to undo a refused diff.
    const before = new Map<string, Route | undefined>();
    const touch = (id: string): void => {
      if (!before.has(id)) before.set(id, this.#routes.get(id));
    };
    for (const id of diff.deletes) {
      touch(id);
      this.#routes.delete(id);
      this.#order.delete(id);
    }
    const upserted = new Map<string, Route>();
    for (const route of diff.upserts) {
      touch(route.id);
      this.#routes.set(route.id, route);
      this.#order.set(route.id, route.version);
      upserted.set(route.id, route);
    }
    const digest = this.#order.digest;
    if (digest !== diff.digest) {
      for (const [id, route] of before) {
        if (route === undefined) {
          this.#routes.delete(id);
          this.#order.delete(id);
        } else {
          this.#routes.set(id, route);
          this.#order.set(id, route.version);
        }
      }
      return {
        applied: false,
        mismatch: { kind: "digest", version: diff.to, expected: diff.digest, actual: digest },
      };
    }

    const deletes = [...before].flatMap(([id, route]) =>
      route !== undefined && !this.#routes.has(id) ? [id] : [],
    );
    const change: TableChange = {
      from: diff.from,
      to: diff.to,
      upserts: [...upserted.values()],
      deletes,
    };
    this.#version = diff.to;
    this.#digest = digest;
    return { applied: true, change, digest };
  }
}

/** Field-by-field equality of two parsed routes (parsing fixes the key order). */
function sameRoute(before: Route | undefined, after: Route): boolean {
  return before !== undefined && JSON.stringify(before) === JSON.stringify(after);
}

/** True when a change neither moved the version nor touched a route: nothing to tell anyone. */
export function isEmptyChange(change: TableChange): boolean {
  return change.from === change.to && change.upserts.length === 0 && change.deletes.length === 0;
}
