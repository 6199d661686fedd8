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

/**
 * Handed to a merged run of changes of one kind (see Committer.submit's `merge`): each change
 * that succeeds takes its own version, in the order of the run.
 */
export interface MergedContext {
  readonly tx: Knex.Transaction;
  readonly now: Date;
  /** Takes the next version for one change of the run. */
  takeVersion(): number;
  record(version: number, entry: ChangeEntry): void;
}

/** One change's result in a merged run; `version` is the one it took, if it changed anything. */
export type MergedResult<T> =
  { ok: true; value: T; version?: number } | { ok: false; error: unknown };

/** A change that can run together with others of the same `key` in one pass. */
export interface Mergeable<I, T> {
  key: string;
  input: I;
  applyMany(ctx: MergedContext, inputs: I[]): Promise<Array<MergedResult<T>>>;
}
