import { randomUUID } from "node:crypto";
import type { Knex } from "knex";
import { notifyWorkerReaddressed, notifyWorkerRemoved } from "../db/channels.js";
import { conflict, notFound } from "../errors.js";
import { presentRoute, type RouteView } from "../routes/model.js";
import { findRoutesOfWorker } from "../routes/repository.js";
import { readHead } from "../sync/changelog.js";
import { relocateRoutes } from "../placement/relocate.js";
import { resetFreePorts } from "../placement/repository.js";
import type { Committed } from "../versioning/change.js";
import type { Committer } from "../versioning/committer.js";
import { presentWorker, type WorkerRow, type WorkerStatus, type WorkerView } from "./model.js";
import {
  deleteWorker,
  findWorker,
  insertWorker,
  listWorkers,
  lockWorker,
  lockWorkerByName,
  setStatus,
  updateRegistration,
} from "./repository.js";
import type { Registration } from "./schema.js";

export interface Registered {
  worker: WorkerView;
  created: boolean;
  version: number;
  routes: RouteView[];
}

function addressChanged(w: WorkerRow, r: Registration): boolean {
  return (
    w.frontend_mode !== r.frontend_mode ||
    (w.port_lo ?? null) !== (r.port_range?.[0] ?? null) ||
    (w.port_hi ?? null) !== (r.port_range?.[1] ?? null) ||
    (w.wildcard_domain ?? null) !== r.wildcard_domain
  );
}

/** Whether registering `r` changes the URL of the routes `w` holds (not their placement). */
function urlChanged(w: WorkerRow, r: Registration): boolean {
  return (
    w.advertised_host !== r.advertised_host ||
    w.tls !== r.tls ||
    (w.wildcard_traffic_port ?? null) !== (r.wildcard_traffic_port ?? null)
  );
}

/** The status a worker returns to when it comes back or is undrained. */
function activeStatus(w: WorkerRow): WorkerStatus {
  return w.connected_instance !== null ? "alive" : "registered";
}

/** The rules for workers: registration, drain, removal. */
export class WorkerService {
  constructor(
    private readonly knex: Knex,
    private readonly committer: Committer,
  ) {}

  /**
   * Registers a worker, or the same worker again by name. A known name is answered only to the
   * worker itself: `provenWorkerId` is the id its X-Worker-Token proved, if any. A registration
   * token alone must never take over an existing worker (its routes would follow the new host).
   * Runs under the committer's lock so that it sees a consistent route count and its table at an
   * exact version.
   */
  async register(r: Registration, provenWorkerId: string | undefined): Promise<Registered> {
    const { result } = await this.committer.submit("workers.register", async (ctx) => {
      const { tx, now } = ctx;
      // Locked: its status is decided from its presence, which a stream may be changing.
      const known = await lockWorkerByName(tx, r.name);
      if (known && known.id !== provenWorkerId) {
        throw conflict(
          `The worker name ${r.name} is taken: registering it again needs that worker's token in X-Worker-Token.`,
        );
      }
      let row: WorkerRow;
      if (!known) {
        row = await insertWorker(tx, randomUUID(), r, now);
      } else {
        const moved = addressChanged(known, r);
        if (moved && known.route_count > 0) {
          throw conflict(
            `Worker ${r.name} still holds ${known.route_count} routes: its frontend_mode, port_range and wildcard_domain cannot change until they are gone.`,
          );
        }
        const status: WorkerStatus = known.status === "draining" ? "draining" : activeStatus(known);
        row = await updateRegistration(tx, known.id, r, status, now);
        if (moved) await resetFreePorts(tx, row.id, r.port_range);
        if (known.route_count > 0 && urlChanged(known, r)) {
          // Delivered at commit: the instance holding the worker's stream sends it a snapshot,
          // whose routes carry the new URLs (no routing version: placement did not change).
          await notifyWorkerReaddressed(tx, row.id);
        }
      }
      const head = await readHead(tx);
      const routes = await findRoutesOfWorker(tx, row.id);
      return {
        worker: presentWorker(row),
        created: !known,
        version: head.version,
        routes: routes.map((route) => presentRoute(route, row)),
      };
    });
    return result;
  }

  async list(status?: WorkerStatus): Promise<WorkerView[]> {
    return (await listWorkers(this.knex, status)).map(presentWorker);
  }

  async get(id: string): Promise<WorkerView> {
    const row = await findWorker(this.knex, id);
    if (!row) throw notFound(`Worker ${id} does not exist.`);
    return presentWorker(row);
  }

  /** Stops new placements on the worker; with `migrate`, moves its routes away in one version. */
  drain(id: string, migrate: boolean): Promise<Committed<WorkerView>> {
    return this.committer.submit("workers.drain", async (ctx) => {
      const worker = await findWorker(ctx.tx, id);
      if (!worker) throw notFound(`Worker ${id} does not exist.`);
      const row = await setStatus(ctx.tx, id, "draining", ctx.now);
      if (migrate) {
        await relocateRoutes(ctx, row, await findRoutesOfWorker(ctx.tx, id));
        return presentWorker((await findWorker(ctx.tx, id))!);
      }
      return presentWorker(row);
    });
  }

  undrain(id: string): Promise<Committed<WorkerView>> {
    return this.committer.submit("workers.undrain", async (ctx) => {
      const worker = await lockWorker(ctx.tx, id);
      if (!worker) throw notFound(`Worker ${id} does not exist.`);
      if (worker.status !== "draining") return presentWorker(worker);
      return presentWorker(await setStatus(ctx.tx, id, activeStatus(worker), ctx.now));
    });
  }

  /**
   * Removes the worker, moving its routes to other eligible workers in the same version. Routes
   * with nowhere to go make it a 409 that changes nothing, unless `force` deletes them.
   * `onlyIf`, checked under the lock, removes it only while it is as the caller last saw it
   * (the reaper forgetting a lost worker): otherwise, or when it is gone already, nothing
   * changes. Answers whether it was removed.
   */
  remove(
    id: string,
    force: boolean,
    onlyIf?: (current: WorkerRow) => boolean,
  ): Promise<Committed<boolean>> {
    return this.committer.submit("workers.delete", async (ctx) => {
      // Locked: `onlyIf` holds until the worker is gone (a stream starting meanwhile waits).
      const worker = await lockWorker(ctx.tx, id);
      if (onlyIf && (!worker || !onlyIf(worker))) return false;
      if (!worker) throw notFound(`Worker ${id} does not exist.`);
      const routes = await findRoutesOfWorker(ctx.tx, id);
      if (!force) {
        const plan = await relocateRoutes(ctx, worker, routes, { apply: false });
        if (plan.stranded.length > 0) {
          throw conflict(
            `${plan.stranded.length} routes of worker ${worker.name} have nowhere to go; retry with force=true to delete them.`,
            undefined,
            { routes: plan.stranded },
          );
        }
      }
      await relocateRoutes(ctx, worker, routes, { deleteStranded: true });
      await deleteWorker(ctx.tx, id);
      // Delivered at commit: every instance closes the removed worker's stream.
      await notifyWorkerRemoved(ctx.tx, id);
      return true;
    });
  }
}
