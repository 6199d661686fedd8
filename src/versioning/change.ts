import type { Knex } from "knex";

/** What one version did to one worker's table. */
export interface ChangeEntry {
  workerId: string;
  routeId: string;
  op: "upsert" | "delete";
  /** The route as the worker should hold it (upserts only). */
  route?: object;
}

/**
 * Handed to a change while it runs inside the committer's transaction. `version` is the version
 * the change takes if it records at least one entry; a change that records nothing takes none.
 */
export interface ChangeContext {
  readonly tx: Knex.Transaction;
  readonly version: number;
  readonly now: Date;
  record(entry: ChangeEntry): void;
}

export interface Committed<T> {
  result: T;
  /** The version this change took, or the head version when it changed nothing. */
  version: number;
  changed: boolean;
  /** Workers whose tables this change touched. */
  workerIds: string[];
}
