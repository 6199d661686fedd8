import type { Statement } from "../db/prepared.js";
import { notFound, preconditionFailed } from "../errors.js";
import type { Row } from "../db/script.js";
import type { PlanContext, RunResult, Scripted, ScriptedRun } from "../versioning/change.js";
import { presentRoute, type RouteRow, type RouteView, type UrlWorker } from "./model.js";
import { routesByIdsStatement, splitWorker, updateRoutesStatement } from "./repository.js";
import type { RoutePatch } from "./schema.js";

/** `If-Match` as sent, or undefined: `*` or a list of entity tags. */
export type IfMatch = string | undefined;

/**
 * RFC 9110's strong comparison, which If-Match requires: a route's ETag is strong, so a weak
 * tag (`W/"42"`) never matches it.
 */
export function checkIfMatch(ifMatch: IfMatch, version: number): void {
  if (ifMatch === undefined) return;
  const tags = ifMatch.split(",").map((t) => t.trim());
  if (tags.includes("*") || tags.includes(`"${version}"`)) return;
  throw preconditionFailed(`If-Match does not match the route's ETag "${version}".`);
}

/**
 * JSON with object keys sorted, for "did the patch change anything?": jsonb hands objects back
 * with its own key order, so the same labels sent in another order must not count as a change.
 */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

export interface PatchRequest {
  id: string;
  patch: RoutePatch;
  ifMatch: IfMatch;
}

/** The columns a patch writes: every field it may change, and the version it took. */
const PATCHED_COLUMNS: Array<keyof RouteRow> = [
  "upstreams",
  "health_check",
  "open_to_public",
  "allowed_client_ips",
  "labels",
  "expires_at",
  "version",
  "updated_at",
];

/** A patch as the committer runs it: scripted with the other patches waiting with it. */
export function scriptedPatch(request: PatchRequest): Scripted<PatchRequest, RouteView> {
  return {
    key: "routes.patch",
    input: request,
    needs: [request.id],
    start: (requests) => new PatchRun(requests),
  };
}

/**
 * The patches of one group: their routes read with the lock, each patch applied in memory in
 * order (two patches of one route see each other), every changed route written in one statement.
 */
class PatchRun implements ScriptedRun<RouteView> {
  private readonly current = new Map<string, { row: RouteRow; w: UrlWorker }>();
  private readonly changed = new Set<string>();
  private outcomes: Array<RunResult<RouteView>> = [];

  constructor(private readonly requests: PatchRequest[]) {}

  reads(): Statement[] {
    return [routesByIdsStatement([...new Set(this.requests.map((r) => r.id))])];
  }

  plan([rows]: Row[][], ctx: PlanContext): void {
    for (const row of rows!) {
      const { w, ...route } = splitWorker(row);
      this.current.set(route.id, { row: route, w });
    }
    this.outcomes = this.requests.map((request) => {
      try {
        return this.apply(request, ctx);
      } catch (error) {
        return { ok: false, error };
      }
    });
  }

  private apply({ id, patch, ifMatch }: PatchRequest, ctx: PlanContext): RunResult<RouteView> {
    const current = this.current.get(id);
    if (!current) throw notFound(`Route ${id} does not exist.`);
    checkIfMatch(ifMatch, Number(current.row.version));
    const changes: Partial<RouteRow> = {};
    for (const [key, value] of Object.entries(patch) as Array<[keyof RoutePatch, unknown]>) {
      const held = current.row[key];
      const before = held instanceof Date ? held.toISOString() : held;
      const after = value instanceof Date ? value.toISOString() : value;
      if (canonicalJson(before) !== canonicalJson(after)) {
        (changes as Record<string, unknown>)[key] = value;
      }
    }
    if (Object.keys(changes).length === 0) {
      return { ok: true, value: presentRoute(current.row, current.w) };
    }
    const version = ctx.takeVersion();
    const row = { ...current.row, ...changes, version, updated_at: ctx.now } as RouteRow;
    this.current.set(id, { row, w: current.w });
    this.changed.add(id);
    const view = presentRoute(row, current.w);
    ctx.record(version, { workerId: row.worker_id, routeId: id, op: "upsert", route: view });
    return { ok: true, value: view, version };
  }

  writes(): Statement[] {
    if (this.changed.size === 0) return [];
    const rows = [...this.changed].map((id) => this.current.get(id)!.row);
    return [updateRoutesStatement(rows, PATCHED_COLUMNS)];
  }

  results(): Array<RunResult<RouteView>> {
    return this.outcomes;
  }
}
