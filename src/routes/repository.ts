import { createHash } from "node:crypto";
import type { Knex } from "knex";
import { Prepared, type Call } from "../db/prepared.js";
import { json, type Row } from "../db/script.js";
import type { ListRoutesQuery } from "./schema.js";
import type { RouteRow, UrlWorker } from "./model.js";

type Db = Knex | Knex.Transaction;

/** A route row with the worker columns its URL is built from. */
export type RouteWithWorker = RouteRow & { w: UrlWorker };

const WORKER_COLUMNS = [
  "w.advertised_host as w_advertised_host",
  "w.frontend_mode as w_frontend_mode",
  "w.tls as w_tls",
  "w.wildcard_domain as w_wildcard_domain",
  "w.wildcard_traffic_port as w_wildcard_traffic_port",
];

export function splitWorker(row: Row): RouteWithWorker {
  const {
    w_advertised_host,
    w_frontend_mode,
    w_tls,
    w_wildcard_domain,
    w_wildcard_traffic_port,
    ...route
  } = row;
  return {
    ...(route as unknown as RouteRow),
    w: {
      advertised_host: w_advertised_host as string,
      frontend_mode: w_frontend_mode as UrlWorker["frontend_mode"],
      tls: w_tls as boolean,
      wildcard_domain: w_wildcard_domain as string | null,
      wildcard_traffic_port: w_wildcard_traffic_port as number | null,
    },
  };
}

function withWorker(db: Db) {
  return db("routes as r")
    .join("workers as w", "w.id", "r.worker_id")
    .select("r.*", ...WORKER_COLUMNS);
}

export async function findRoute(db: Db, id: string): Promise<RouteWithWorker | undefined> {
  const row = (await withWorker(db).where("r.id", id).first()) as
    Record<string, unknown> | undefined;
  return row ? splitWorker(row) : undefined;
}

export async function findRoutesOfWorker(db: Db, workerId: string): Promise<RouteRow[]> {
  return (await db("routes").where({ worker_id: workerId }).orderBy("id")) as RouteRow[];
}

/** The routes of many workers, in one query. */
export async function findRoutesOfWorkers(db: Db, workerIds: string[]): Promise<RouteRow[]> {
  if (workerIds.length === 0) return [];
  return (await db("routes").whereIn("worker_id", workerIds).orderBy("id")) as RouteRow[];
}

export async function findRoutesOfSession(db: Db, sessionId: string): Promise<RouteRow[]> {
  return (await db("routes").where({ session_id: sessionId })) as RouteRow[];
}

/** Of `ids`, the routes whose `expires_at` has passed at `now` (re-checked under the lock). */
export async function findExpiredAmong(db: Db, ids: string[], now: Date): Promise<RouteRow[]> {
  if (ids.length === 0) return [];
  return (await db("routes").whereIn("id", ids).andWhere("expires_at", "<=", now)) as RouteRow[];
}

/** One page of routes in id order, after `afterId`. */
export async function listRoutes(
  db: Db,
  q: ListRoutesQuery,
  labels: Array<[string, string]>,
  afterId: string | undefined,
): Promise<RouteWithWorker[]> {
  const query = withWorker(db)
    .orderBy("r.id")
    .limit(q.limit + 1);
  const equal: Array<keyof ListRoutesQuery> = [
    "session_id",
    "endpoint_id",
    "worker_id",
    "app",
    "mode",
    "user_id",
    "project_id",
  ];
  for (const key of equal) {
    const value = q[key];
    if (value !== undefined) void query.where(`r.${key}`, value as string);
  }
  // Every `label=key:value` must hold: two values for one key match no route.
  for (const [key, value] of labels) {
    void query.whereRaw("r.labels @> ?::jsonb", [JSON.stringify({ [key]: value })]);
  }
  if (q.inactive_since) {
    void query.whereRaw("COALESCE(r.last_activity_at, r.created_at) < ?", [q.inactive_since]);
  }
  if (afterId) void query.where("r.id", ">", afterId);
  const rows = (await query) as Record<string, unknown>[];
  return rows.map(splitWorker);
}

/** Puts routes on their new workers (and addresses) under `version`, one statement per 1,000. */
export async function moveRoutes(
  tx: Knex.Transaction,
  moves: Array<{
    id: string;
    workerId: string;
    port: number | null;
    subdomain: string | null;
    wildcardDomain: string | null;
  }>,
  version: number,
  now: Date,
): Promise<void> {
  for (let i = 0; i < moves.length; i += 1000) {
    const chunk = moves.slice(i, i + 1000);
    const values = chunk.map(() => "(?::uuid, ?::uuid, ?::int, ?::text, ?::text)").join(", ");
    await tx.raw(
      `UPDATE routes SET worker_id = v.worker_id, port = v.port, subdomain = v.subdomain,
         wildcard_domain = v.wildcard_domain, version = ?, updated_at = ?
       FROM (VALUES ${values}) AS v(id, worker_id, port, subdomain, wildcard_domain)
       WHERE routes.id = v.id`,
      [
        version,
        now,
        ...chunk.flatMap((m) => [m.id, m.workerId, m.port, m.subdomain, m.wildcardDomain]),
      ],
    );
  }
}

export async function deleteRoutes(tx: Knex.Transaction, ids: string[]): Promise<void> {
  for (let i = 0; i < ids.length; i += 1000) {
    await tx("routes")
      .whereIn("id", ids.slice(i, i + 1000))
      .delete();
  }
}

// Statements for scripted runs (see db/script.ts and db/prepared.ts), prepared once per
// connection; knex's queries run them with runCall.

/** Every column of a route row, each once (the compiler checks the list against RouteRow). */
const ROUTE_FIELDS: Record<keyof RouteRow, true> = {
  id: true,
  session_id: true,
  kernel_id: true,
  endpoint_id: true,
  app: true,
  protocol: true,
  mode: true,
  upstreams: true,
  health_check: true,
  worker_selector: true,
  worker_id: true,
  port: true,
  subdomain: true,
  wildcard_domain: true,
  open_to_public: true,
  allowed_client_ips: true,
  user_id: true,
  project_id: true,
  labels: true,
  expires_at: true,
  last_activity_at: true,
  version: true,
  request_hash: true,
  created_at: true,
  updated_at: true,
};

/*
 * The columns are named, not `r.*`: a prepared statement whose result gains a column (a newer
 * instance's migration adding one to routes during a rolling upgrade) fails with "cached plan
 * must not change result type" on every connection that prepared it.
 */
const ROUTES_BY_IDS = new Prepared(
  "appproxy_routes_by_ids",
  ["uuid[]"],
  `SELECT ${Object.keys(ROUTE_FIELDS)
    .map((c) => `r.${c}`)
    .join(", ")}, w.advertised_host AS w_advertised_host, w.frontend_mode AS w_frontend_mode,
      w.tls AS w_tls, w.wildcard_domain AS w_wildcard_domain,
      w.wildcard_traffic_port AS w_wildcard_traffic_port
    FROM routes r JOIN workers w ON w.id = r.worker_id WHERE r.id = ANY($1)`,
);

/** The routes with these ids, with their worker's URL columns; rows for splitWorker. */
export const routesByIdsStatement = (ids: string[]): Call => ROUTES_BY_IDS.with(ids);

const INSERT_ROUTES = new Prepared(
  "appproxy_insert_routes",
  ["jsonb"],
  "INSERT INTO routes SELECT * FROM jsonb_populate_recordset(NULL::routes, $1)",
);

/** Inserts routes from one JSON document. */
export const insertRoutesStatement = (rows: RouteRow[]): Call => INSERT_ROUTES.with(json(rows));

const updates = new Map<string, Prepared>();

/** Writes the given columns of each row, matched by id, from one JSON document. */
export function updateRoutesStatement(rows: RouteRow[], columns: Array<keyof RouteRow>): Call {
  const key = columns.join(",");
  let statement = updates.get(key);
  if (!statement) {
    const set = columns.map((c) => `${c} = x.${c}`).join(", ");
    // The ids again as an array: PostgreSQL guesses 100 rows for the JSON set and would read the
    // whole table to join them; with the array it looks the routes up by their primary key.
    // Named after its columns, so that the name means the same statement in every process.
    const digest = createHash("sha256").update(key).digest("hex").slice(0, 16);
    statement = new Prepared(
      `appproxy_update_routes_${digest}`,
      ["jsonb", "uuid[]"],
      `UPDATE routes SET ${set} FROM jsonb_populate_recordset(NULL::routes, $1) x
        WHERE routes.id = x.id AND routes.id = ANY($2)`,
    );
    updates.set(key, statement);
  }
  return statement.with(
    json(rows),
    rows.map((r) => r.id),
  );
}
