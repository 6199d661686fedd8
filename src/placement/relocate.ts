import { Planner } from "./planner.js";
import {
  applyTally,
  candidateSet,
  loadSnapshot,
  WorkerTally,
  type PlacementWorker,
} from "./repository.js";
import { presentRoute, type RouteRow } from "../routes/model.js";
import { deleteRoutes, moveRoutes } from "../routes/repository.js";
import type { ChangeContext } from "../versioning/change.js";
import type { WorkerRow } from "../workers/model.js";

export interface Relocation {
  /** Routes moved, with the worker they moved to. */
  moved: Array<{ routeId: string; workerId: string }>;
  /** Routes that no eligible worker can take. */
  stranded: string[];
}

interface Move {
  route: RouteRow;
  target: PlacementWorker;
  port: number | null;
  subdomain: string | null;
}

/** Where each route of `source` would go (the planner's moves), and those with nowhere to go. */
async function planMoves(
  ctx: ChangeContext,
  source: WorkerRow,
  routes: RouteRow[],
): Promise<{ moves: Move[]; stranded: RouteRow[] }> {
  const snapshot = await loadSnapshot(
    ctx.tx,
    candidateSet([], true),
    routes.length,
    routes.flatMap((r) => (r.port !== null ? [r.port] : [])),
    routes.flatMap((r) => (r.subdomain !== null ? [r.subdomain] : [])),
  );
  const planner = new Planner(snapshot);
  const moves: Move[] = [];
  const stranded: RouteRow[] = [];
  const bookings = planner.moveAll(routes, source.id);
  routes.forEach((route, i) => {
    const booking = bookings[i];
    if (booking) {
      moves.push({
        route,
        target: booking.worker,
        port: booking.port,
        subdomain: booking.subdomain,
      });
    } else stranded.push(route);
  });
  return { moves, stranded };
}

/**
 * Moves `routes` off `source` onto other eligible workers, keeping each route's port or
 * subdomain where the new worker can serve it. Routes with nowhere to go stay, unless
 * `deleteStranded`, which removes them; with `apply: false` nothing is written (a dry run).
 * Everything lands in the change's one version.
 */
export async function relocateRoutes(
  ctx: ChangeContext,
  source: WorkerRow,
  routes: RouteRow[],
  options: { deleteStranded?: boolean; apply?: boolean } = {},
): Promise<Relocation> {
  if (routes.length === 0) return { moved: [], stranded: [] };
  const { moves, stranded } = await planMoves(ctx, source, routes);
  const relocation = {
    moved: moves.map((m) => ({ routeId: m.route.id, workerId: m.target.id })),
    stranded: stranded.map((r) => r.id),
  };
  if (options.apply === false) return relocation;

  const { tx } = ctx;
  const tally = new WorkerTally();
  await moveRoutes(
    tx,
    moves.map((m) => ({
      id: m.route.id,
      workerId: m.target.id,
      port: m.port,
      subdomain: m.subdomain,
      wildcardDomain: m.subdomain !== null ? m.target.wildcard_domain : null,
    })),
    ctx.version,
    ctx.now,
  );
  for (const m of moves) {
    tally.remove(source.id, m.route.port);
    tally.add(m.target.id, m.port);
    const row: RouteRow = {
      ...m.route,
      worker_id: m.target.id,
      port: m.port,
      subdomain: m.subdomain,
      wildcard_domain: m.subdomain !== null ? m.target.wildcard_domain : null,
      version: ctx.version,
      updated_at: ctx.now,
    };
    ctx.record({ workerId: source.id, routeId: m.route.id, op: "delete" });
    ctx.record({
      workerId: m.target.id,
      routeId: m.route.id,
      op: "upsert",
      route: presentRoute(row, m.target),
    });
  }
  if (options.deleteStranded && stranded.length > 0) {
    await deleteRoutes(
      tx,
      stranded.map((r) => r.id),
    );
    for (const r of stranded) {
      tally.remove(source.id, r.port);
      ctx.record({ workerId: source.id, routeId: r.id, op: "delete" });
    }
  }
  await applyTally(tx, tally);
  return relocation;
}
