import { freshSubdomain } from "./subdomain.js";
import { hasRoom, leastLoaded, occupy, portInRange, servingRejection } from "./placement.js";
import { presentRoute, type RouteRow } from "../routes/model.js";
import {
  deleteRoutes,
  freePortsAmong,
  releasePorts,
  takeLowestPorts,
  takePorts,
  takenSubdomains,
  moveRoutes,
} from "../routes/repository.js";
import type { ChangeContext } from "../versioning/change.js";
import type { WorkerRow } from "../workers/model.js";
import { adjustRouteCounts, loadCandidates, type CandidateRow } from "../workers/repository.js";

export interface Relocation {
  /** Routes moved, with the worker they moved to. */
  moved: Array<{ routeId: string; workerId: string }>;
  /** Routes that no eligible worker can take. */
  stranded: string[];
}

interface Move {
  route: RouteRow;
  target: CandidateRow;
  port: number | null;
  subdomain: string | null;
}

/**
 * Plans and applies moving `routes` off `source` onto other eligible workers, keeping each route's
 * port or subdomain where the new worker can serve it. Routes with nowhere to go stay, unless
 * `deleteStranded`, which removes them. Everything lands in the change's one version.
 */
export async function relocateRoutes(
  ctx: ChangeContext,
  source: WorkerRow,
  routes: RouteRow[],
  options: { deleteStranded?: boolean; apply?: boolean } = {},
): Promise<Relocation> {
  const { tx } = ctx;
  if (routes.length === 0) return { moved: [], stranded: [] };
  const pool = (await loadCandidates(tx, routes.length)).filter((c) => c.id !== source.id);
  const ports = routes.flatMap((r) => (r.port !== null ? [r.port] : []));
  const portKeys = await freePortsAmong(
    tx,
    pool.filter((c) => c.frontend_mode === "port").map((c) => c.id),
    ports,
  );
  const subdomains = routes.flatMap((r) => (r.subdomain ? [r.subdomain] : []));
  const otherDomains = pool.flatMap((c) =>
    c.wildcard_domain && c.wildcard_domain !== source.wildcard_domain ? [c.wildcard_domain] : [],
  );
  const takenKeys = await takenSubdomains(tx, otherDomains, subdomains);

  const keepsAddress = (route: RouteRow, c: CandidateRow): boolean => {
    if (route.port !== null)
      return portKeys.has(`${c.id}:${route.port}`) && portInRange(c, route.port);
    if (!route.subdomain || c.frontend_mode !== "wildcard") return false;
    return (
      c.wildcard_domain === route.wildcard_domain ||
      !takenKeys.has(`${c.wildcard_domain}/${route.subdomain}`)
    );
  };

  const moves: Move[] = [];
  const stranded: RouteRow[] = [];
  for (const route of routes) {
    const able = (c: CandidateRow) => servingRejection(c, route) === undefined && hasRoom(c);
    const target =
      leastLoaded(pool, (c) => able(c) && keepsAddress(route, c)) ?? leastLoaded(pool, able);
    if (!target) {
      stranded.push(route);
      continue;
    }
    const keep = keepsAddress(route, target);
    let port: number | null = null;
    let subdomain: string | null = null;
    if (target.frontend_mode === "port") {
      if (keep) {
        port = route.port;
        portKeys.delete(`${target.id}:${route.port}`);
      }
    } else {
      subdomain = keep ? route.subdomain : freshSubdomain(route.app);
      if (target.wildcard_domain !== route.wildcard_domain) {
        takenKeys.add(`${target.wildcard_domain}/${subdomain}`);
      }
    }
    occupy(target, target.frontend_mode === "port");
    moves.push({ route, target, port, subdomain });
  }

  if (options.apply === false) {
    return {
      moved: moves.map((m) => ({ routeId: m.route.id, workerId: m.target.id })),
      stranded: stranded.map((r) => r.id),
    };
  }

  await bookPorts(ctx, moves);
  const counts = new Map<string, number>();
  const bump = (id: string, d: number) => counts.set(id, (counts.get(id) ?? 0) + d);
  const placed = moves.map((m) => ({
    id: m.route.id,
    workerId: m.target.id,
    port: m.port,
    subdomain: m.subdomain,
    wildcardDomain: m.subdomain ? m.target.wildcard_domain : null,
  }));
  await moveRoutes(tx, placed, ctx.version, ctx.now);
  moves.forEach((m, i) => {
    const p = placed[i]!;
    bump(source.id, -1);
    bump(m.target.id, 1);
    const row: RouteRow = {
      ...m.route,
      worker_id: p.workerId,
      port: p.port,
      subdomain: p.subdomain,
      wildcard_domain: p.wildcardDomain,
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
  });
  const releasable = moves.flatMap((m) => (m.route.port !== null ? [m.route.port] : []));
  if (options.deleteStranded && stranded.length > 0) {
    await deleteRoutes(
      tx,
      stranded.map((r) => r.id),
    );
    for (const r of stranded) {
      bump(source.id, -1);
      if (r.port !== null) releasable.push(r.port);
      ctx.record({ workerId: source.id, routeId: r.id, op: "delete" });
    }
  }
  await releasePorts(tx, source.id, releasable);
  await adjustRouteCounts(tx, counts);
  return {
    moved: moves.map((m) => ({ routeId: m.route.id, workerId: m.target.id })),
    stranded: stranded.map((r) => r.id),
  };
}

async function bookPorts(ctx: ChangeContext, moves: Move[]): Promise<void> {
  const fresh = new Map<string, Move[]>();
  const kept: Array<{ workerId: string; port: number }> = [];
  for (const m of moves) {
    if (m.target.frontend_mode !== "port") continue;
    if (m.port !== null) {
      kept.push({ workerId: m.target.id, port: m.port });
      continue;
    }
    const list = fresh.get(m.target.id) ?? [];
    list.push(m);
    fresh.set(m.target.id, list);
  }
  await takePorts(ctx.tx, kept);
  const booked = await takeLowestPorts(
    ctx.tx,
    new Map([...fresh].map(([workerId, list]) => [workerId, list.length])),
  );
  for (const [workerId, list] of fresh) {
    const ports = booked.get(workerId) ?? [];
    // Placement counted these ports free (from route_count); fewer would be a broken count.
    if (ports.length < list.length) {
      throw new Error(`worker ${workerId} had fewer free ports than counted`);
    }
    list.forEach((m, i) => (m.port = ports[i]!));
  }
}
