import type { Knex } from "knex";
import { badRequest, notFound, validationFailed } from "../errors.js";
import type { Committed } from "../versioning/change.js";
import type { Committer } from "../versioning/committer.js";
import { applyTally, WorkerTally } from "../placement/repository.js";
import { scriptedCreate, type CreateOutcome } from "./create.js";
import { checkIfMatch, scriptedPatch, type IfMatch } from "./patch.js";
import { presentRoute, type RouteRow, type RouteView } from "./model.js";
import {
  deleteRoutes,
  findExpiredAmong,
  findRoute,
  findRoutesOfSession,
  listRoutes,
} from "./repository.js";
import type { ListRoutesQuery, RouteInput, RoutePatch } from "./schema.js";

export interface RoutePage {
  items: RouteView[];
  next_cursor: string | null;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

const encodeCursor = (id: string) => Buffer.from(id, "utf8").toString("base64url");
/** The route id a cursor holds: a forged one of any other shape never reaches the database. */
function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, "base64url").toString("utf8");
  if (!UUID.test(id)) {
    throw validationFailed([
      { path: "query.cursor", message: "is not a cursor this service gave out" },
    ]);
  }
  return id;
}

/** The rules for routes; every write goes through the committer and so takes a version. */
export class RouteService {
  constructor(
    private readonly knex: Knex,
    private readonly committer: Committer,
  ) {}

  create(inputs: RouteInput[], batch: boolean): Promise<Committed<CreateOutcome>> {
    const seen = new Map<string, number>();
    inputs.forEach((input, i) => {
      if (!input.id) return;
      const first = seen.get(input.id);
      if (first !== undefined) {
        throw validationFailed([
          { path: `routes.${i}.id`, message: `repeats the id of routes.${first}` },
        ]);
      }
      seen.set(input.id, i);
    });
    return this.committer.submitScripted(
      batch ? "routes.batch" : "routes.create",
      scriptedCreate({ inputs, batch }),
    );
  }

  async get(id: string): Promise<RouteView> {
    const row = await findRoute(this.knex, id);
    if (!row) throw notFound(`Route ${id} does not exist.`);
    return presentRoute(row, row.w);
  }

  async list(query: ListRoutesQuery): Promise<RoutePage> {
    const labels = [query.label ?? []].flat().map((l): [string, string] => {
      const i = l.indexOf(":");
      return [l.slice(0, i), l.slice(i + 1)];
    });
    const after = query.cursor ? decodeCursor(query.cursor) : undefined;
    const rows = await listRoutes(this.knex, query, labels, after);
    const page = rows.slice(0, query.limit);
    return {
      items: page.map((r) => presentRoute(r, r.w)),
      next_cursor: rows.length > query.limit ? encodeCursor(page[page.length - 1]!.id) : null,
    };
  }

  patch(id: string, patch: RoutePatch, ifMatch: IfMatch): Promise<Committed<RouteView>> {
    return this.committer.submitScripted("routes.patch", scriptedPatch({ id, patch, ifMatch }));
  }

  remove(id: string, ifMatch: IfMatch): Promise<Committed<void>> {
    return this.committer.submit("routes.delete", async (ctx) => {
      const current = await findRoute(ctx.tx, id);
      if (!current) throw notFound(`Route ${id} does not exist.`);
      checkIfMatch(ifMatch, Number(current.version));
      await this.deleteRows(ctx.tx, [current]);
      ctx.record({ workerId: current.worker_id, routeId: id, op: "delete" });
    });
  }

  removeSession(sessionId: string): Promise<Committed<{ deleted: number }>> {
    if (!sessionId) throw badRequest("DELETE /routes needs a session_id filter.");
    return this.committer.submit("routes.delete_session", async (ctx) => {
      const rows = await findRoutesOfSession(ctx.tx, sessionId);
      await this.deleteRows(ctx.tx, rows);
      for (const r of rows) ctx.record({ workerId: r.worker_id, routeId: r.id, op: "delete" });
      return { deleted: rows.length };
    });
  }

  /** Removes the given routes whose `expires_at` has passed at `now`, in one version. */
  removeExpired(ids: string[], now: Date): Promise<Committed<number>> {
    return this.committer.submit("routes.expire", async (ctx) => {
      const rows = await findExpiredAmong(ctx.tx, ids, now);
      await this.deleteRows(ctx.tx, rows);
      for (const r of rows) ctx.record({ workerId: r.worker_id, routeId: r.id, op: "delete" });
      return rows.length;
    });
  }

  private deleteRows(tx: Knex.Transaction, rows: RouteRow[]): Promise<void> {
    return deleteRouteRows(tx, rows);
  }
}

/** Deletes routes and gives their ports and counts back to their workers. */
export async function deleteRouteRows(tx: Knex.Transaction, rows: RouteRow[]): Promise<void> {
  if (rows.length === 0) return;
  await deleteRoutes(
    tx,
    rows.map((r) => r.id),
  );
  const tally = new WorkerTally();
  for (const r of rows) tally.remove(r.worker_id, r.port);
  await applyTally(tx, tally);
}
