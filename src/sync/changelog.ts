import type { Knex } from "knex";
import { presentRoute, type RouteView } from "../routes/model.js";
import { findRoutesOfWorkers } from "../routes/repository.js";
import { findWorkersByIds } from "../workers/repository.js";

/** Which of `workerIds` no longer exist (removed). */
export async function missingWorkers(db: Knex, workerIds: string[]): Promise<string[]> {
  // One array parameter and, almost always, no row back: the cost of a check that finds
  // nothing stays small with the fleet's size.
  const { rows } = await db.raw<{ rows: Array<{ id: string }> }>(
    `SELECT u.id FROM unnest(?::uuid[]) AS u(id)
      WHERE NOT EXISTS (SELECT 1 FROM workers w WHERE w.id = u.id)`,
    [workerIds],
  );
  return rows.map((r) => r.id);
}

/** When each of the workers' rows last changed (registration, drain, status), by id. */
export async function workersUpdatedAt(db: Knex, workerIds: string[]): Promise<Map<string, Date>> {
  const rows = (await db("workers").whereIn("id", workerIds).select("id", "updated_at")) as Array<{
    id: string;
    updated_at: Date | string;
  }>;
  return new Map(rows.map((r) => [r.id, new Date(r.updated_at)]));
}

/** One row of the change log as the hub reads it. */
export interface LoggedEntry {
  version: number;
  worker_id: string;
  route_id: string;
  op: "upsert" | "delete";
  route: RouteView | null;
}

export async function readHead(
  db: Knex | Knex.Transaction,
): Promise<{ version: number; floor: number }> {
  const row = (await db("routing_state").where({ id: 1 }).first("version", "changelog_floor")) as {
    version: number;
    changelog_floor: number;
  };
  return { version: Number(row.version), floor: Number(row.changelog_floor) };
}

/** Every entry of versions after `from` up to `to`, in version order. */
export async function readEntries(db: Knex, from: number, to: number): Promise<LoggedEntry[]> {
  const rows = (await db("change_entries")
    .where("version", ">", from)
    .andWhere("version", "<=", to)
    .orderBy("version")
    .select("version", "worker_id", "route_id", "op", "route")) as LoggedEntry[];
  return rows.map((r) => ({ ...r, version: Number(r.version) }));
}

/** A worker's table and, where the log still holds it, its changes since `since`; one snapshot in time. */
export interface WorkerView {
  head: number;
  exists: boolean;
  table: RouteView[];
  /** Entries for this worker after `since`, or undefined when the log no longer holds them all. */
  entries: LoggedEntry[] | undefined;
}

export async function readWorkerView(
  knex: Knex,
  workerId: string,
  since: number | undefined,
): Promise<WorkerView> {
  const [view] = await readWorkerViews(knex, [{ workerId, since }]);
  return view!;
}

/**
 * The views of many workers in one snapshot and a handful of queries, whatever their number: a
 * reconnect storm of a whole fleet costs a few statements per batch, not a transaction per worker.
 */
export async function readWorkerViews(
  knex: Knex,
  wanted: Array<{ workerId: string; since: number | undefined }>,
): Promise<WorkerView[]> {
  return knex.transaction(
    async (tx) => {
      const { version: head, floor } = await readHead(tx);
      const ids = [...new Set(wanted.map((w) => w.workerId))];
      const workers = new Map((await findWorkersByIds(tx, ids)).map((w) => [w.id, w]));
      const tables = new Map<string, RouteView[]>();
      for (const row of await findRoutesOfWorkers(tx, ids)) {
        const view = presentRoute(row, workers.get(row.worker_id)!);
        const list = tables.get(row.worker_id);
        if (list) list.push(view);
        else tables.set(row.worker_id, [view]);
      }
      const resumable = wanted.filter(
        (w) => w.since !== undefined && w.since >= floor && w.since <= head,
      );
      const entries = new Map<string, LoggedEntry[]>();
      if (resumable.length > 0) {
        const from = Math.min(...resumable.map((w) => w.since!));
        const rows = (await tx("change_entries")
          .whereIn(
            "worker_id",
            resumable.map((w) => w.workerId),
          )
          .andWhere("version", ">", from)
          .andWhere("version", "<=", head)
          .orderBy("version")
          .select("version", "worker_id", "route_id", "op", "route")) as LoggedEntry[];
        for (const row of rows) {
          const entry = { ...row, version: Number(row.version) };
          const list = entries.get(entry.worker_id);
          if (list) list.push(entry);
          else entries.set(entry.worker_id, [entry]);
        }
      }
      return wanted.map(({ workerId, since }) => {
        if (!workers.has(workerId)) return { head, exists: false, table: [], entries: undefined };
        const canResume = since !== undefined && since >= floor && since <= head;
        return {
          head,
          exists: true,
          table: tables.get(workerId) ?? [],
          entries: canResume
            ? (entries.get(workerId) ?? []).filter((e) => e.version > since)
            : undefined,
        };
      });
    },
    { isolationLevel: "repeatable read" },
  );
}
