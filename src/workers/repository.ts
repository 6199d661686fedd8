import type { Knex } from "knex";
import { allPortsFree } from "../placement/repository.js";
import type { WorkerRow, WorkerStatus } from "./model.js";
import type { Registration } from "./schema.js";

type Db = Knex | Knex.Transaction;

export async function findWorker(db: Db, id: string): Promise<WorkerRow | undefined> {
  return (await db("workers").where({ id }).first()) as WorkerRow | undefined;
}

export async function findWorkerByName(db: Db, name: string): Promise<WorkerRow | undefined> {
  return (await db("workers").where({ name }).first()) as WorkerRow | undefined;
}

/**
 * The worker's row, locked until the transaction ends: a change decided from it (its status
 * from its presence, its routes moved for being lost) cannot be overtaken by a stream starting or
 * ending meanwhile, whose write waits for the lock and then applies to what this one left.
 */
export async function lockWorker(tx: Knex.Transaction, id: string): Promise<WorkerRow | undefined> {
  return (await tx("workers").where({ id }).forUpdate().first()) as WorkerRow | undefined;
}

export async function lockWorkerByName(
  tx: Knex.Transaction,
  name: string,
): Promise<WorkerRow | undefined> {
  return (await tx("workers").where({ name }).forUpdate().first()) as WorkerRow | undefined;
}

/**
 * A number for each stream asked to open (ids may repeat), from one sequence shared by every
 * instance, or undefined for a worker that does not exist. Taken before the upgrade is
 * answered, so a stream a worker opens after another one always has the greater number.
 */
export async function numberStreams(db: Db, ids: string[]): Promise<Array<number | undefined>> {
  const result = await db.raw<{ rows: Array<{ i: number | string; seq: number | string }> }>(
    `SELECT a.i, nextval('worker_stream_seq') AS seq
       FROM unnest(?::uuid[]) WITH ORDINALITY AS a(id, i) JOIN workers w ON w.id = a.id
      ORDER BY a.i`,
    [ids],
  );
  const numbers = new Array<number | undefined>(ids.length).fill(undefined);
  for (const row of result.rows) numbers[Number(row.i) - 1] = Number(row.seq);
  return numbers;
}

export async function listWorkers(db: Db, status?: WorkerStatus): Promise<WorkerRow[]> {
  const q = db("workers").orderBy("name");
  if (status) void q.where({ status });
  return (await q) as WorkerRow[];
}

export async function findWorkersByIds(db: Db, ids: string[]): Promise<WorkerRow[]> {
  if (ids.length === 0) return [];
  return (await db("workers").whereIn("id", ids)) as WorkerRow[];
}

function registrationColumns(r: Registration) {
  return {
    advertised_host: r.advertised_host,
    frontend_mode: r.frontend_mode,
    port_lo: r.port_range?.[0] ?? null,
    port_hi: r.port_range?.[1] ?? null,
    wildcard_domain: r.wildcard_domain,
    wildcard_traffic_port: r.wildcard_traffic_port,
    protocols: r.protocols,
    modes: r.modes,
    tls: r.tls,
    capacity: r.capacity,
    labels: JSON.stringify(r.labels),
    dedicated: r.dedicated,
  };
}

export async function insertWorker(
  tx: Knex.Transaction,
  id: string,
  r: Registration,
  now: Date,
): Promise<WorkerRow> {
  const [row] = (await tx("workers")
    .insert({
      id,
      name: r.name,
      ...registrationColumns(r),
      free_port_ranges: allPortsFree(tx, r.port_range),
      status: "registered",
      liveness_since: now,
      registered_at: now,
      updated_at: now,
    })
    .returning("*")) as WorkerRow[];
  return row!;
}

export async function updateRegistration(
  tx: Knex.Transaction,
  id: string,
  r: Registration,
  status: WorkerStatus,
  now: Date,
): Promise<WorkerRow> {
  const [row] = (await tx("workers")
    .where({ id })
    .update({
      ...registrationColumns(r),
      status,
      lost_at: status === "lost" ? undefined : null,
      liveness_since: now,
      updated_at: now,
    })
    .returning("*")) as WorkerRow[];
  return row!;
}

export async function setStatus(
  tx: Knex.Transaction,
  id: string,
  status: WorkerStatus,
  now: Date,
): Promise<WorkerRow> {
  const [row] = (await tx("workers")
    .where({ id })
    .update({ status, updated_at: now, lost_at: status === "lost" ? now : null })
    .returning("*")) as WorkerRow[];
  return row!;
}

export async function deleteWorker(tx: Knex.Transaction, id: string): Promise<void> {
  await tx("workers").where({ id }).delete();
}
