import type { Knex } from "knex";
import type { WorkerRow } from "../workers/model.js";

type Db = Knex | Knex.Transaction;

/** When a worker counts as vanished (see findVanishedWorkers). */
export interface VanishedRule {
  lostAfterS: number;
  connectedStaleAfterS: number;
  notBefore: Date;
}

/**
 * Restricts `q` to workers not yet lost with no live stream anywhere for `lostAfterS`: none
 * connected (or the holding instance stopped reporting it), and none since max(its liveness
 * clock, `notBefore`). False when `notBefore` is too recent for any worker to be vanished.
 */
function whereVanished(q: Knex.QueryBuilder, now: Date, rule: VanishedRule): boolean {
  const cutoff = new Date(now.getTime() - rule.lostAfterS * 1000);
  // An instance reports its streams' workers every heartbeat; one that stopped reporting died.
  const staleCutoff = new Date(now.getTime() - rule.connectedStaleAfterS * 1000);
  if (rule.notBefore > cutoff) return false;
  void q
    .whereIn("status", ["registered", "alive", "draining"])
    .andWhere("liveness_since", "<", cutoff)
    .andWhere((q) => q.whereNull("last_seen_at").orWhere("last_seen_at", "<", cutoff))
    .andWhere((q) =>
      q
        .whereNull("connected_instance")
        .orWhereNull("last_seen_at")
        .orWhere("last_seen_at", "<", staleCutoff),
    );
  return true;
}

/**
 * Workers not yet lost with no live stream anywhere for `lostAfterS` (see whereVanished).
 * Draining workers count too: one that vanished mid-drain must not keep its routes unserved.
 */
export async function findVanishedWorkers(
  db: Db,
  now: Date,
  rule: VanishedRule,
  limit: number,
): Promise<WorkerRow[]> {
  const q = db("workers");
  if (!whereVanished(q, now, rule)) return [];
  return (await q.orderBy("liveness_since").limit(limit)) as WorkerRow[];
}

/**
 * Marks the worker lost at `at` if it is still vanished by the same rule at `now`, in one
 * statement: decided on the row as it is when written, never on an earlier read of it. A stream
 * start committed meanwhile (on any instance) keeps it as it is; one that waits for this write
 * finds it lost and makes it alive again. True when it was marked.
 */
export async function markLostIfVanished(
  tx: Knex.Transaction,
  id: string,
  now: Date,
  rule: VanishedRule,
  at: Date,
): Promise<boolean> {
  const q = tx("workers").where({ id });
  if (!whereVanished(q, now, rule)) return false;
  const marked = (await q.update({ status: "lost", lost_at: at, updated_at: at }, [
    "id",
  ])) as Array<{
    id: string;
  }>;
  return marked.length > 0;
}

/** Which parts of a reaper run have anything to do (see Reaper.runLocked). */
export interface ReaperDue {
  vanished: boolean;
  lostWithRoutes: boolean;
  forgettable: boolean;
  expired: boolean;
  trim: boolean;
}

/** Lost workers that still hold routes: their routes are (still) to be moved. */
const lostWithRoutes = (db: Db) =>
  db("workers").where({ status: "lost" }).andWhere("route_count", ">", 0);

/** Workers lost for longer than `forgetAfterS`. */
const forgettable = (db: Db, now: Date, forgetAfterS: number) =>
  db("workers")
    .where({ status: "lost" })
    .andWhere("lost_at", "<", new Date(now.getTime() - forgetAfterS * 1000));

/** Routes whose `expires_at` has passed. */
const expiredRoutes = (db: Db, now: Date) =>
  db("routes").whereNotNull("expires_at").andWhere("expires_at", "<=", now);

/**
 * Whether any worker is vanished, lost with routes or forgettable, any route expired, and the
 * change log longer than `retention` versions (what trimChangelog trims): one statement, so that
 * a run with nothing to do costs one round trip and writes nothing.
 */
export async function findReaperDue(
  db: Db,
  now: Date,
  rule: VanishedRule,
  forgetAfterS: number,
  retention: number,
): Promise<ReaperDue> {
  const exists = (q: Knex.QueryBuilder) => db.raw("EXISTS ?", [q.select(db.raw("1"))]);
  const vanished = db("workers");
  const row = (await db
    .select({
      vanished: whereVanished(vanished, now, rule) ? exists(vanished) : db.raw("false"),
      lost_with_routes: exists(lostWithRoutes(db)),
      forgettable: exists(forgettable(db, now, forgetAfterS)),
      expired: exists(expiredRoutes(db, now)),
      trim: exists(
        db("routing_state")
          .where({ id: 1 })
          .andWhere(db.raw("version - changelog_floor > ?", [retention])),
      ),
    })
    .first()) as Record<
    "vanished" | "lost_with_routes" | "forgettable" | "expired" | "trim",
    boolean
  >;
  return {
    vanished: row.vanished,
    lostWithRoutes: row.lost_with_routes,
    forgettable: row.forgettable,
    expired: row.expired,
    trim: row.trim,
  };
}

export async function findLostWithRoutes(db: Db, limit: number): Promise<WorkerRow[]> {
  return (await lostWithRoutes(db).orderBy("lost_at").limit(limit)) as WorkerRow[];
}

export async function findForgettable(
  db: Db,
  now: Date,
  forgetAfterS: number,
  limit: number,
): Promise<WorkerRow[]> {
  return (await forgettable(db, now, forgetAfterS).limit(limit)) as WorkerRow[];
}

export async function countStranded(db: Db): Promise<number> {
  const row = (await db("workers").where({ status: "lost" }).sum({ n: "route_count" }).first()) as
    { n: number | string | null } | undefined;
  return Number(row?.n ?? 0);
}

export async function findExpiredRouteIds(db: Db, now: Date, limit: number): Promise<string[]> {
  const rows = (await expiredRoutes(db, now)
    .orderBy("expires_at")
    .limit(limit)
    .select("id")) as Array<{ id: string }>;
  return rows.map((r) => r.id);
}

/**
 * Records traffic times, only for routes the reporting worker serves, never moving backwards and
 * never before the route existed (such a time is no traffic of this route).
 */
export async function recordActivity(
  db: Db,
  rows: Array<{ routeId: string; workerId: string; at: Date }>,
): Promise<void> {
  if (rows.length === 0) return;
  const values = rows.map(() => "(?::uuid, ?::uuid, ?::timestamptz)").join(", ");
  await db.raw(
    `UPDATE routes SET last_activity_at = GREATEST(COALESCE(routes.last_activity_at, v.at), v.at)
     FROM (VALUES ${values}) AS v(id, worker_id, at)
     WHERE routes.id = v.id AND routes.worker_id = v.worker_id AND v.at >= routes.created_at`,
    rows.flatMap((r) => [r.routeId, r.workerId, r.at]),
  );
}
