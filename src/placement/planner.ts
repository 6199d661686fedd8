import {
  atCapacity,
  byLoad,
  hasRoom,
  leastLoaded,
  portInRange,
  servingRejection,
  type Candidate,
  type Demand,
  type LoadKey,
} from "./placement.js";
import { freshSubdomain } from "./subdomain.js";

/** What placement is given to work from: candidate workers and the subdomains known taken. */
export interface PlacementSnapshot<W extends Candidate> {
  /** The workers a route may go to (pinned ones included whatever their status). */
  workers: Iterable<W>;
  /** "domain/subdomain" of existing routes, among the subdomains asked or kept. */
  takenSubdomains: Iterable<string>;
  /**
   * Ports that new routes of this plan ask for: a route given the lowest free port gets the
   * lowest not among them where it can, so that a later route asking for one still finds it.
   */
  askedPorts?: Iterable<number>;
  /**
   * Set when `workers` holds only the least loaded eligible workers (and any pinned one): the
   * last of them in the order of load. Every eligible worker left out comes after it. Left unset,
   * `workers` holds every candidate.
   */
  loadHorizon?: LoadKey;
}

/** A new route to place: its demand, and what it pins (a worker, a port or a subdomain). */
export interface NewRoute extends Demand {
  app: string;
  worker_id?: string;
  port?: number;
  subdomain?: string;
}

/** A route to move off its worker, keeping its port or subdomain where the new worker can. */
export interface PlacedRoute extends Demand {
  app: string;
  port: number | null;
  subdomain: string | null;
  wildcard_domain: string | null;
}

/** Where a route goes: the worker, and the port (port mode) or subdomain (wildcard mode). */
export interface Booking<W extends Candidate> {
  worker: W;
  port: number | null;
  subdomain: string | null;
}

/** Why a new route was not placed; `field` names the input at fault, where one is. */
export type RefusalKind =
  | "unknown_worker" // 422: a pinned worker does not exist
  | "cannot_serve" // 422: a pinned worker is not eligible or cannot serve the route
  | "outside_range" // 422: a pinned port outside the pinned worker's range (or no ports there)
  | "no_subdomains" // 422: a subdomain asked of a port-mode worker
  | "port_taken" // 409
  | "subdomain_taken" // 409
  | "full" // 503: a pinned worker at capacity or out of ports
  | "nowhere" // 503: no worker can take it
  | "unsure"; // not an answer: a worker left out of the snapshot may be the one (read them all)

export interface Refusal {
  refused: RefusalKind;
  field?: "worker_id" | "port" | "subdomain";
  detail: string;
}

export const isRefusal = <W extends Candidate>(r: Booking<W> | Refusal): r is Refusal =>
  "refused" in r;

/**
 * Placement, in memory and without I/O: given a snapshot of the candidates, books new routes
 * (`place`) and moves existing ones (`move`) one at a time, each booking counted on its worker
 * so that the next one sees it. `mark` and `undoTo` take back bookings (a batch that fails).
 */
export class Planner<W extends Candidate> {
  private readonly byId = new Map<string, W>();
  private readonly taken: Set<string>;
  private readonly asked: ReadonlySet<number>;
  private readonly horizon: LoadKey | undefined;
  private readonly undo: Array<() => void> = [];

  constructor(
    snapshot: PlacementSnapshot<W>,
    private readonly newSubdomain: (app: string) => string = freshSubdomain,
  ) {
    for (const w of snapshot.workers) this.byId.set(w.id, w);
    this.taken = new Set(snapshot.takenSubdomains);
    this.asked = new Set(snapshot.askedPorts ?? []);
    this.horizon = snapshot.loadHorizon && { ...snapshot.loadHorizon };
  }

  worker(id: string): W | undefined {
    return this.byId.get(id);
  }

  /** A point to come back to with `undoTo`. */
  mark(): number {
    return this.undo.length;
  }

  /** Takes back every booking made since `mark`. */
  undoTo(mark: number): void {
    while (this.undo.length > mark) this.undo.pop()!();
  }

  /** Books a new route: on its pinned worker, else on the least loaded worker that can take it. */
  place(route: NewRoute): Booking<W> | Refusal {
    const worker = route.worker_id ? this.pinned(route) : this.anywhere(route);
    if ("refused" in worker) return worker;
    if (worker.frontend_mode === "port") {
      const port = route.port ?? worker.free.lowestNotIn(this.asked)!;
      if (!worker.free.has(port)) {
        return {
          refused: "port_taken",
          field: "port",
          detail: `Port ${port} is already taken on worker ${worker.name}.`,
        };
      }
      return this.book(worker, port, null);
    }
    const subdomain = route.subdomain ?? this.newSubdomain(route.app);
    if (this.subdomainTaken(worker, subdomain)) {
      return {
        refused: "subdomain_taken",
        field: "subdomain",
        detail: `Subdomain ${subdomain} is already taken on ${worker.wildcard_domain}.`,
      };
    }
    return this.book(worker, null, subdomain);
  }

  /**
   * Books moves of `routes` off worker `from`, answered in their order (undefined where no worker
   * can take one). First every route that some worker able to take it can serve at its port or
   * subdomain moves to the least loaded such worker; then the others move to the least loaded
   * worker able to take them, at its lowest free port or a fresh subdomain: a fresh port is never
   * one another route of the move could have kept.
   */
  moveAll<R extends PlacedRoute>(
    routes: readonly R[],
    from: string,
  ): Array<Booking<W> | undefined> {
    if (this.horizon) throw new Error("moves are planned on every candidate, not the least loaded");
    const able = (route: R) => (c: W) =>
      c.id !== from && servingRejection(c, route) === undefined && hasRoom(c);
    const bookings = routes.map((route) => {
      const target = leastLoaded(
        this.byId.values(),
        (c) => able(route)(c) && this.keepsAddress(route, c),
      );
      if (!target) return undefined;
      return target.frontend_mode === "port"
        ? this.book(target, route.port!, null)
        : this.book(target, null, route.subdomain!);
    });
    return routes.map((route, i) => {
      if (bookings[i]) return bookings[i];
      const target = leastLoaded(this.byId.values(), able(route));
      if (!target) return undefined;
      return target.frontend_mode === "port"
        ? this.book(target, target.free.lowest()!, null)
        : this.book(target, null, this.newSubdomain(route.app));
    });
  }

  private keepsAddress(route: PlacedRoute, c: W): boolean {
    if (route.port !== null) return c.frontend_mode === "port" && c.free.has(route.port);
    if (route.subdomain === null || c.frontend_mode !== "wildcard") return false;
    return c.wildcard_domain === route.wildcard_domain || !this.subdomainTaken(c, route.subdomain);
  }

  private pinned(route: NewRoute): W | Refusal {
    const worker = this.byId.get(route.worker_id!);
    if (!worker) {
      return {
        refused: "unknown_worker",
        field: "worker_id",
        detail: `Worker ${route.worker_id} is unknown.`,
      };
    }
    const rejection = servingRejection(worker, route);
    if (rejection) {
      return {
        refused: "cannot_serve",
        field: "worker_id",
        detail: `Worker cannot take the route: ${rejection}.`,
      };
    }
    if (route.port !== undefined && !portInRange(worker, route.port)) {
      const detail =
        worker.frontend_mode === "port"
          ? `Port ${route.port} lies outside the range ${worker.port_lo}-${worker.port_hi} of worker ${worker.name}.`
          : `Worker ${worker.name} serves subdomains, not ports.`;
      return { refused: "outside_range", field: "port", detail };
    }
    if (route.subdomain !== undefined && worker.frontend_mode !== "wildcard") {
      return {
        refused: "no_subdomains",
        field: "subdomain",
        detail: `Worker ${worker.name} serves ports, not subdomains.`,
      };
    }
    if (atCapacity(worker)) {
      return {
        refused: "full",
        detail: `Worker ${worker.name} is at its capacity of ${worker.capacity} routes.`,
      };
    }
    if (worker.frontend_mode === "port" && route.port === undefined && !hasRoom(worker)) {
      return { refused: "full", detail: `Worker ${worker.name} has no free port left.` };
    }
    return worker;
  }

  private anywhere(route: NewRoute): W | Refusal {
    const able = [...this.byId.values()].filter(
      (c) => servingRejection(c, route) === undefined && hasRoom(c),
    );
    let fits = able;
    if (route.port !== undefined) {
      const inRange = able.filter((c) => portInRange(c, route.port!));
      fits = inRange.filter((c) => c.free.has(route.port!));
      if (fits.length === 0 && inRange.length > 0) {
        if (this.horizon) return this.unsure();
        return {
          refused: "port_taken",
          field: "port",
          detail: `Port ${route.port} is taken on every worker that could serve the route.`,
        };
      }
    } else if (route.subdomain !== undefined) {
      const wildcard = able.filter((c) => c.frontend_mode === "wildcard");
      fits = wildcard.filter((c) => !this.subdomainTaken(c, route.subdomain!));
      if (fits.length === 0 && wildcard.length > 0) {
        if (this.horizon) return this.unsure();
        return {
          refused: "subdomain_taken",
          field: "subdomain",
          detail: `Subdomain ${route.subdomain} is taken on every domain that could serve the route.`,
        };
      }
    }
    const worker = leastLoaded(fits, () => true);
    // A worker past the horizon (its own bookings took it there) may lose to one left out.
    if (this.horizon && (!worker || byLoad(worker, this.horizon) > 0)) return this.unsure();
    if (worker) return worker;
    const selector =
      Object.keys(route.worker_selector).length > 0 ? ", with its worker_selector" : "";
    return {
      refused: "nowhere",
      detail: `No worker can take the route (${route.protocol}, ${route.mode}${selector}).`,
    };
  }

  private unsure(): Refusal {
    return {
      refused: "unsure",
      detail: "The least loaded workers read cannot take the route: read every candidate.",
    };
  }

  private subdomainTaken(worker: W, subdomain: string): boolean {
    return this.taken.has(`${worker.wildcard_domain}/${subdomain}`);
  }

  /** Counts the route on `worker` and takes its port or subdomain there. */
  private book(worker: W, port: number | null, subdomain: string | null): Booking<W> {
    worker.route_count += 1;
    this.undo.push(() => (worker.route_count -= 1));
    if (port !== null) {
      worker.free.take(port);
      this.undo.push(() => worker.free.give(port));
    }
    if (subdomain !== null) {
      const key = `${worker.wildcard_domain}/${subdomain}`;
      if (!this.taken.has(key)) {
        this.taken.add(key);
        this.undo.push(() => this.taken.delete(key));
      }
    }
    return { worker, port, subdomain };
  }
}
