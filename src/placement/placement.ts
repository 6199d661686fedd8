import type { Protocol, RouteMode, WorkerRow } from "../workers/model.js";
import { ELIGIBLE_STATUSES } from "../workers/model.js";
import type { FreePorts } from "./free-ports.js";

/** A worker as placement sees it: its rules, its load and the free ports it was told of. */
export interface Candidate extends Pick<
  WorkerRow,
  | "id"
  | "name"
  | "status"
  | "frontend_mode"
  | "port_lo"
  | "port_hi"
  | "wildcard_domain"
  | "protocols"
  | "modes"
  | "labels"
  | "dedicated"
  | "capacity"
  | "route_count"
> {
  /** Its lowest free ports and those asked for (see FreePorts); empty in wildcard mode. */
  free: FreePorts;
}

/** What a route asks of the worker that serves it. */
export interface Demand {
  protocol: Protocol;
  mode: RouteMode;
  worker_selector: Record<string, string>;
}

/** Why `worker` can never serve `demand` (room aside), or undefined when it can. */
export function servingRejection(worker: Candidate, demand: Demand): string | undefined {
  if (!ELIGIBLE_STATUSES.includes(worker.status)) {
    return `worker ${worker.name} is ${worker.status}, not eligible for new routes`;
  }
  if (!worker.protocols.includes(demand.protocol)) {
    return `worker ${worker.name} does not serve protocol ${demand.protocol}`;
  }
  if (!worker.modes.includes(demand.mode)) {
    return `worker ${worker.name} does not serve mode ${demand.mode}`;
  }
  const selector = Object.entries(demand.worker_selector);
  for (const [key, value] of selector) {
    if (worker.labels[key] !== value) {
      return `worker ${worker.name} lacks label ${key}=${value} of the worker_selector`;
    }
  }
  if (worker.dedicated && selector.length === 0) {
    return `worker ${worker.name} is dedicated and takes only routes with a worker_selector`;
  }
  return undefined;
}

export const atCapacity = (worker: Candidate): boolean =>
  worker.capacity !== null && worker.route_count >= worker.capacity;

/** True while the worker has room for one more route: below its capacity, and a port if it needs one. */
export function hasRoom(worker: Candidate): boolean {
  if (atCapacity(worker)) return false;
  return worker.frontend_mode === "wildcard" || worker.free.lowest() !== undefined;
}

/** The "can take" rule of the API, for a route that asks no particular port or subdomain. */
export const canTake = (worker: Candidate, demand: Demand): boolean =>
  servingRejection(worker, demand) === undefined && hasRoom(worker);

/** True when a port-mode worker's range contains `port`. */
export const portInRange = (worker: Candidate, port: number): boolean =>
  worker.frontend_mode === "port" &&
  worker.port_lo !== null &&
  worker.port_hi !== null &&
  port >= worker.port_lo &&
  port <= worker.port_hi;

/** Where a worker stands in the order of load: its routes, then its name. */
export type LoadKey = Pick<Candidate, "route_count" | "name">;

/**
 * The order placement prefers workers in: fewer routes first, ties by name (code-unit order,
 * which is the byte order of PostgreSQL's "C" collation for the ASCII of a worker's name).
 */
export function byLoad(a: LoadKey, b: LoadKey): number {
  if (a.route_count !== b.route_count) return a.route_count - b.route_count;
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}

/** The least loaded candidate that passes `accept`; ties go to the name, for stable answers. */
export function leastLoaded<C extends Candidate>(
  candidates: Iterable<C>,
  accept: (c: C) => boolean,
): C | undefined {
  let best: C | undefined;
  for (const c of candidates) {
    if (!accept(c)) continue;
    if (!best || byLoad(c, best) < 0) best = c;
  }
  return best;
}
