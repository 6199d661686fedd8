import type { Knex } from "knex";
import type { Row } from "../db/script.js";
import type { Statement } from "../db/prepared.js";
import type { ChangeTiming } from "../ops/change-stages.js";

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
  /** When it was submitted and committed, for the stages its answer closes. */
  timing?: ChangeTiming;
}

/** Handed to a scripted run while it plans: versions and the change log, in memory. */
export interface PlanContext {
  readonly now: Date;
  /** Takes the next version for one change of the run. */
  takeVersion(): number;
  record(version: number, entry: ChangeEntry): void;
}

/** One change's result in a scripted run; `version` is the one it took, if it changed anything. */
export type RunResult<T> = { ok: true; value: T; version?: number } | { ok: false; error: unknown };

/**
 * The changes of one kind that arrived together, run as one pass in two round trips: the
 * statements of `reads` go out with the lock (and those of `more`, if any, after them), `plan`
 * decides every change in memory (versions, placement, ports), and `writes` go out with the log
 * and the commit. Statements are SQL text, or prepared statements with their values (see
 * db/prepared.ts).
 */
export interface ScriptedRun<T> {
  reads(): Statement[];
  /**
   * Statements to read next, once the rows of `reads` (and of earlier answers of `more`) are in,
   * sent in a round trip of their own; none when the run has what it needs. Optional: a run
   * whose first reads always suffice has none. `plan` is then given every row, in order.
   */
  more?(rows: Row[][]): Statement[];
  plan(rows: Row[][], ctx: PlanContext): void;
  writes(): Statement[];
  results(): Array<RunResult<T>>;
}

/** A change that runs scripted together with others of the same `key`. */
export interface Scripted<I, T> {
  key: string;
  input: I;
  /** Routes the change creates and routes it needs to exist, by id: one group never holds both. */
  creates?: string[];
  needs?: string[];
  start(inputs: I[]): ScriptedRun<T>;
}
