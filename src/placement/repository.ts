import type { Knex } from "knex";
import { Prepared, runCall, type Call } from "../db/prepared.js";
import type { Row } from "../db/script.js";
import { ELIGIBLE_STATUSES, type WorkerRow } from "../workers/model.js";
import { FreePorts } from "./free-ports.js";
import type { Candidate } from "./placement.js";

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

/** A candidate worker as read for placement, with what a route's URL needs. */
export type PlacementWorker = Pick<WorkerRow, (typeof PLACEMENT_COLUMNS)[number]> & Candidate;

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
 * Of each candidate's free ports, the lowest $3 runs (enough for $3 routes, one port each) and
 * the runs holding a port of $4: what placement needs, read in the worker's own row in time
 * proportional to its runs, however wide its range.
 */
const CANDIDATES = new Prepared(
  "appproxy_placement_candidates",
  ["uuid[]", "text[]", "int", "int[]"],
  `SELECT ${PLACEMENT_COLUMNS.map((c) => `w.${c}`).join(", ")},
      (SELECT range_agg(u.r) FROM unnest(w.free_port_ranges) WITH ORDINALITY AS u(r, i)
        WHERE u.i <= $3 OR u.r @> ANY($4)) AS free_port_ranges
    FROM workers w WHERE ${CANDIDATE} ORDER BY w.name`,
);

/**
 * The candidates, each with its free ports as placement needs them for `routes` routes, some of
 * which ask for the ports `ports` (see CANDIDATES); parse the rows with `placementWorkers`.
 */
export const candidatesStatement = (set: CandidateSet, routes: number, ports: number[]): Call =>
  CANDIDATES.with(set.pinned, set.statuses, routes, [...new Set(ports)]);

/** The rows of candidatesStatement as placement's workers. */
export function placementWorkers(rows: Row[]): PlacementWorker[] {
  return rows.map((row) => {
    const { free_port_ranges, ...worker } = row;
    return {
      ...(worker as unknown as Omit<PlacementWorker, "free">),
      free: FreePorts.parse(free_port_ranges as string | null),
    };
  });
}

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

/** The rows of takenSubdomainsStatement as "domain/subdomain" keys. */
export const subdomainKeys = (rows: Row[]): string[] =>
  rows.map((r) => `${String(r.wildcard_domain)}/${String(r.subdomain)}`);

/** Placement's snapshot for `routes` routes on the set, read through knex (outside scripts). */
export async function loadSnapshot(
  db: Db,
  set: CandidateSet,
  routes: number,
  ports: number[],
  subdomains: string[],
): Promise<{ workers: PlacementWorker[]; takenSubdomains: string[] }> {
  const read = await runCall<{ rows: Row[] }>(db, candidatesStatement(set, routes, ports));
  const taken =
    subdomains.length === 0
      ? []
      : subdomainKeys(
          (await runCall<{ rows: Row[] }>(db, takenSubdomainsStatement(set, subdomains))).rows,
        );
  return { workers: placementWorkers(read.rows), takenSubdomains: taken };
}

/**
 * What a change does to its workers' rows: routes counted on or off, ports taken and ports
 * given back. Written in one statement whatever the number of workers.
 */
export class WorkerTally {
  private readonly counts = new Map<string, number>();
  private readonly taken: Array<[string, number]> = [];
  private readonly released: Array<[string, number]> = [];

  /** A route placed on `workerId`, holding `port` there if it has one. */
  add(workerId: string, port: number | null): void {
    this.counts.set(workerId, (this.counts.get(workerId) ?? 0) + 1);
    if (port !== null) this.taken.push([workerId, port]);
  }

  /** A route gone from `workerId`, its port (if any) free again. */
  remove(workerId: string, port: number | null): void {
    this.counts.set(workerId, (this.counts.get(workerId) ?? 0) - 1);
    if (port !== null) this.released.push([workerId, port]);
  }

  get empty(): boolean {
    return (
      this.taken.length === 0 &&
      this.released.length === 0 &&
      [...this.counts.values()].every((n) => n === 0)
    );
  }

  statement(): Call {
    const counts = [...this.counts].filter(([, n]) => n !== 0);
    return TALLY.with(
      counts.map(([id]) => id),
      counts.map(([, n]) => n),
      this.taken.map(([id]) => id),
      this.taken.map(([, port]) => port),
      this.released.map(([id]) => id),
      this.released.map(([, port]) => port),
    );
  }
}

/*
 * Ports are taken and given back as multirange arithmetic on the worker's row (found by its
 * primary key): the cost grows with the runs of its free ports, never with its range.
 */
const TALLY = new Prepared(
  "appproxy_worker_tally",
  ["uuid[]", "int[]", "uuid[]", "int[]", "uuid[]", "int[]"],
  `WITH v(id, delta, taken, released) AS (
      SELECT c.id, c.delta, NULL::int, NULL::int FROM unnest($1, $2) AS c(id, delta)
      UNION ALL SELECT t.id, 0, t.port, NULL FROM unnest($3, $4) AS t(id, port)
      UNION ALL SELECT r.id, 0, NULL, r.port FROM unnest($5, $6) AS r(id, port)),
    s AS (SELECT v.id, sum(v.delta)::int AS delta,
        range_agg(int4range(v.taken, v.taken, '[]')) FILTER (WHERE v.taken IS NOT NULL) AS taken,
        range_agg(int4range(v.released, v.released, '[]')) FILTER (WHERE v.released IS NOT NULL)
          AS released
      FROM v GROUP BY v.id)
    UPDATE workers w SET route_count = w.route_count + s.delta,
      free_port_ranges = w.free_port_ranges - COALESCE(s.taken, '{}') + COALESCE(s.released, '{}')
    FROM s WHERE w.id = s.id`,
);

/** Writes a tally through knex (outside scripts). */
export async function applyTally(tx: Knex.Transaction, tally: WorkerTally): Promise<void> {
  if (!tally.empty) await runCall(tx, tally.statement());
}

/** Makes the whole range free (the worker holds no routes when this runs); none in wildcard mode. */
export async function resetFreePorts(
  tx: Knex.Transaction,
  workerId: string,
  range: [number, number] | null,
): Promise<void> {
  await tx.raw(
    `UPDATE workers SET free_port_ranges =
       CASE WHEN ?::int IS NULL THEN NULL ELSE int4multirange(int4range(?::int, ?::int, '[]')) END
     WHERE id = ?`,
    [range?.[0] ?? null, range?.[0] ?? null, range?.[1] ?? null, workerId],
  );
}
