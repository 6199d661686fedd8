import type { Knex } from "knex";
import { presentRoute, type RouteView } from "../routes/model.js";
import { findRoutesOfWorker } from "../routes/repository.js";
import { findWorker } from "../workers/repository.js";

/** Which of `workerIds` still exist. */
export async function existingWorkers(db: Knex, workerIds: string[]): Promise<Set<string>> {
  const rows = (await db("workers").whereIn("id", workerIds).select("id")) as Array<{ id: string }>;
  return new Set(rows.map((r) => r.id));
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
  return knex.transaction(
    async (tx) => {
      const { version: head, floor } = await readHead(tx);
      const worker = await findWorker(tx, workerId);
      if (!worker) return { head, exists: false, table: [], entries: undefined };
      const rows = await findRoutesOfWorker(tx, workerId);
      const table = rows.map((r) => presentRoute(r, worker));
      let entries: LoggedEntry[] | undefined;
      if (since !== undefined && since >= floor && since <= head) {
        entries = (
          (await tx("change_entries")
            .where({ worker_id: workerId })
            .andWhere("version", ">", since)
            .andWhere("version", "<=", head)
            .orderBy("version")
            .select("version", "worker_id", "route_id", "op", "route")) as LoggedEntry[]
        ).map((r) => ({ ...r, version: Number(r.version) }));
      }
      return { head, exists: true, table, entries };
    },
    { isolationLevel: "repeatable read" },
  );
}
