import type { Knex } from "knex";
import { Prepared, runCall, type Call } from "../db/prepared.js";
import type { Row } from "../db/script.js";
import { ELIGIBLE_STATUSES, type WorkerRow } from "../workers/model.js";
import { FreePorts } from "./free-ports.js";
import { byLoad, type Candidate, type LoadKey } from "./placement.js";
import type { PlacementSnapshot } from "./planner.js";

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

/**
 * Where new routes may go: the workers `pinned` by id, and of the eligible workers the
 * `leastLoaded` first in the order of load (null: all of them, 0: none).
 */
export interface CandidateSet {
  pinned: string[];
  leastLoaded: number | null;
}

/** The workers `pinned` by id, and every eligible worker when `anywhere`. */
export const candidateSet = (pinned: string[], anywhere: boolean): CandidateSet => ({
  pinned,
  leastLoaded: anywhere ? null : 0,
});

/** The workers `pinned` by id, and the `count` least loaded eligible workers. */
export const leastLoadedSet = (pinned: string[], count: number): CandidateSet => ({
  pinned,
  leastLoaded: count,
});

/*
 * The literal matches the partial index workers_eligible_load_index (migration
 * 20261207030000_eligible_load_index), so the least loaded are read in the index's order and a
 * read of N of them stops after N entries, however large the fleet.
 */
const ELIGIBLE = `w.status IN (${ELIGIBLE_STATUSES.map((s) => `'${s}'`).join(", ")})`;

/*
 * The pinned workers ($1), then the $2 least loaded eligible ones (all when NULL), in the order
 * of load (see byLoad); of each, the lowest $3 runs of free ports (enough for $3 routes, one
 * port each) and the runs holding a port of $4: what placement needs, read in the worker's own
 * row in time proportional to its runs, however wide its range. `in_order` tells the second
 * part's rows.
 */
const COLUMNS = `${PLACEMENT_COLUMNS.map((c) => `w.${c}`).join(", ")},
      (SELECT range_agg(u.r) FROM unnest(w.free_port_ranges) WITH ORDINALITY AS u(r, i)
        WHERE u.i <= $3 OR u.r @> ANY($4)) AS free_port_ranges`;
const CANDIDATES = new Prepared(
  "appproxy_placement_candidates",
  ["uuid[]", "bigint", "int", "int[]"],
  `SELECT ${COLUMNS}, false AS in_order FROM workers w WHERE w.id = ANY($1)
    UNION ALL (SELECT ${COLUMNS}, true FROM workers w WHERE ${ELIGIBLE}
      ORDER BY w.route_count, w.name COLLATE "C" LIMIT $2)`,
);

/**
 * The candidates, each with its free ports as placement needs them for `routes` routes, some of
 * which ask for the ports `ports` (see CANDIDATES); parse the rows with `candidatesRead`.
 */
export const candidatesStatement = (set: CandidateSet, routes: number, ports: number[]): Call =>
  CANDIDATES.with(set.pinned, set.leastLoaded, routes, [...new Set(ports)]);

/** The rows of candidatesStatement: placement's workers, and its horizon (see PlacementSnapshot). */
export function candidatesRead(
  rows: Row[],
  set: CandidateSet,
): { workers: PlacementWorker[]; loadHorizon: LoadKey | undefined } {
  const byId = new Map<string, PlacementWorker>();
  let inOrder = 0;
  let last: PlacementWorker | undefined;
  for (const row of rows) {
    const { free_port_ranges, in_order, ...columns } = row;
    const worker: PlacementWorker = {
      ...(columns as unknown as Omit<PlacementWorker, "free">),
      free: FreePorts.parse(free_port_ranges as string | null),
    };
    byId.set(worker.id, worker);
    if (in_order !== true) continue;
    inOrder += 1;
    if (!last || byLoad(worker, last) > 0) last = worker;
  }
  const complete = set.leastLoaded === null || inOrder < set.leastLoaded;
  return {
    workers: [...byId.values()],
    loadHorizon: complete || !last ? undefined : { route_count: last.route_count, name: last.name },
  };
}

/*
 * Taken on any wildcard domain of the fleet, not only the candidates' (the planner asks only of
 * theirs): the domains are few, and each is one probe of routes_domain_subdomain_unique.
 */
const TAKEN_SUBDOMAINS = new Prepared(
  "appproxy_taken_subdomains",
  ["text[]"],
  `SELECT r.wildcard_domain, r.subdomain FROM routes r
    WHERE r.subdomain = ANY($1) AND r.wildcard_domain IN (
      SELECT DISTINCT w.wildcard_domain FROM workers w WHERE w.wildcard_domain IS NOT NULL)`,
);

/** Of the asked subdomains, those taken on a wildcard domain: rows (wildcard_domain, subdomain). */
export const takenSubdomainsStatement = (subdomains: string[]): Call =>
  TAKEN_SUBDOMAINS.with([...new Set(subdomains)]);

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
): Promise<PlacementSnapshot<PlacementWorker>> {
  const read = await runCall<{ rows: Row[] }>(db, candidatesStatement(set, routes, ports));
  const taken =
    subdomains.length === 0
      ? []
      : subdomainKeys(
          (await runCall<{ rows: Row[] }>(db, takenSubdomainsStatement(subdomains))).rows,
        );
  return { ...candidatesRead(read.rows, set), takenSubdomains: taken };
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

/** A worker's free ports when it holds no routes: its whole range, one value whatever its size. */
export const allPortsFree = (db: Db, range: [number, number] | null): Knex.Raw =>
  range === null
    ? db.raw("NULL::int4multirange")
    : db.raw("int4multirange(int4range(?::int, ?::int, '[]'))", range);

/** Makes the whole range free (the worker holds no routes when this runs); none in wildcard mode. */
export async function resetFreePorts(
  tx: Knex.Transaction,
  workerId: string,
  range: [number, number] | null,
): Promise<void> {
  await tx("workers")
    .where({ id: workerId })
    .update({ free_port_ranges: allPortsFree(tx, range) });
}
