import type { Knex } from "knex";
import { Prepared, runCall, type Call } from "../db/prepared.js";
import { ELIGIBLE_STATUSES, type WorkerRow, type WorkerStatus } from "./model.js";
import type { Registration } from "./schema.js";

type Db = Knex | Knex.Transaction;

/** The columns of a worker that placement and a route's URL read. */
const PLACEMENT_COLUMNS = [
  "id",
  "name",
  "advertised_host",
  "frontend_mode",
  "port_lo",
  "port_hi",
  "wildcard_domain",
  "wildcard_traffic_port",
  "protocols",
  "modes",
  "tls",
  "capacity",
  "labels",
  "dedicated",
  "status",
  "route_count",
] as const;

/** A worker's placement columns with up to the asked number of its free ports counted. */
export type CandidateRow = Pick<WorkerRow, (typeof PLACEMENT_COLUMNS)[number]> & {
  free_ports: number;
};

export async function findWorker(db: Db, id: string): Promise<WorkerRow | undefined> {
  return (await db("workers").where({ id }).first()) as WorkerRow | undefined;
}

export async function findWorkerByName(db: Db, name: string): Promise<WorkerRow | undefined> {
  return (await db("workers").where({ name }).first()) as WorkerRow | undefined;
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

/**
 * Candidates for new routes (the given workers, else every eligible one), each with its free
 * ports counted up to `needPorts` (from its range and route_count, see CANDIDATES).
 */
export async function loadCandidates(
  db: Db,
  needPorts: number,
  ids?: string[],
): Promise<CandidateRow[]> {
  const result = await runCall<{ rows: CandidateRow[] }>(
    db,
    candidatesStatement(candidateSet(ids ?? [], ids === undefined), needPorts),
  );
  return result.rows.map((r) => ({ ...r, free_ports: Number(r.free_ports) }));
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

/** Makes every port of the range free again (the worker holds no routes when this runs). */
export async function resetFreePorts(
  tx: Knex.Transaction,
  workerId: string,
  range: [number, number] | null,
): Promise<void> {
  await tx("free_ports").where({ worker_id: workerId }).delete();
  if (!range) return;
  await tx.raw(
    "INSERT INTO free_ports (worker_id, port) SELECT ?, generate_series(?::int, ?::int)",
    [workerId, range[0], range[1]],
  );
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

/** Applies route-count deltas to every worker touched, in one statement. */
export async function adjustRouteCounts(
  tx: Knex.Transaction,
  deltas: Map<string, number>,
): Promise<void> {
  if ([...deltas.values()].every((delta) => delta === 0)) return;
  await runCall(tx, adjustRouteCountsStatement(deltas));
}

// Statements for scripted runs (see db/script.ts and db/prepared.ts), prepared once per
// connection; knex's queries run them with runCall.

/** Where new routes may go: the workers `pinned` by id, and every worker in one of `statuses`. */
export interface CandidateSet {
  pinned: string[];
  statuses: string[];
}

/** The workers `pinned` by id, and every eligible worker when `anywhere`. */
export const candidateSet = (pinned: string[], anywhere: boolean): CandidateSet => ({
  pinned,
  statuses: anywhere ? [...ELIGIBLE_STATUSES] : [],
});

/** The condition on `w` of a CandidateSet given as $1 (pinned) and $2 (statuses). */
const CANDIDATE = "(w.id = ANY($1) OR w.status = ANY($2))";

/*
 * A port-mode worker's every route holds one port of its range, so its free ones are the range
 * less `route_count`: arithmetic on the row, where counting rows of `free_ports` would read past
 * the ports booked since the last vacuum, worker by worker, on every placement.
 */
const CANDIDATES = new Prepared(
  "appproxy_candidates",
  ["uuid[]", "text[]", "int"],
  `SELECT ${PLACEMENT_COLUMNS.map((c) => `w.${c}`).join(", ")},
      CASE WHEN w.frontend_mode = 'port'
        THEN LEAST($3, GREATEST(0, w.port_hi - w.port_lo + 1 - w.route_count)) ELSE 0
      END AS free_ports
    FROM workers w WHERE ${CANDIDATE} ORDER BY w.name`,
);

/** The candidates' rows, each with up to `needPorts` of its free ports counted (as loadCandidates). */
export const candidatesStatement = (set: CandidateSet, needPorts: number): Call =>
  CANDIDATES.with(set.pinned, set.statuses, needPorts);

const FREE_PORTS_AMONG = new Prepared(
  "appproxy_free_ports_among",
  ["uuid[]", "text[]", "int[]"],
  `SELECT f.worker_id, f.port FROM free_ports f JOIN workers w ON w.id = f.worker_id
    WHERE f.port = ANY($3) AND w.frontend_mode = 'port' AND ${CANDIDATE}`,
);

/** Of the asked ports, those free on a port-mode candidate: rows (worker_id, port). */
export const freePortsAmongStatement = (set: CandidateSet, ports: number[]): Call =>
  FREE_PORTS_AMONG.with(set.pinned, set.statuses, [...new Set(ports)]);

const TAKEN_SUBDOMAINS = new Prepared(
  "appproxy_taken_subdomains",
  ["uuid[]", "text[]", "text[]"],
  `SELECT r.wildcard_domain, r.subdomain FROM routes r
    WHERE r.subdomain = ANY($3) AND r.wildcard_domain IN (
      SELECT w.wildcard_domain FROM workers w WHERE w.wildcard_domain IS NOT NULL AND ${CANDIDATE})`,
);

/** Of the asked subdomains, those taken on a candidate's domain: rows (wildcard_domain, subdomain). */
export const takenSubdomainsStatement = (set: CandidateSet, subdomains: string[]): Call =>
  TAKEN_SUBDOMAINS.with(set.pinned, set.statuses, [...new Set(subdomains)]);

const ADJUST_ROUTE_COUNTS = new Prepared(
  "appproxy_adjust_route_counts",
  ["uuid[]", "int[]"],
  `UPDATE workers SET route_count = workers.route_count + v.delta
    FROM unnest($1, $2) AS v(id, delta) WHERE workers.id = v.id`,
);

/** Applies route-count deltas to every worker touched (as adjustRouteCounts). */
export function adjustRouteCountsStatement(deltas: Map<string, number>): Call {
  const changed = [...deltas].filter(([, delta]) => delta !== 0);
  return ADJUST_ROUTE_COUNTS.with(
    changed.map(([id]) => id),
    changed.map(([, d]) => d),
  );
}
