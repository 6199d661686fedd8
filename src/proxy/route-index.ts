import { createHash } from "node:crypto";
import type { Route } from "../client/route.js";
import type { TableChange } from "../client/routing-table.js";
import {
  compileAllowList,
  refusalOf,
  type ClientAllowList,
  type ServingScope,
} from "./route-validation.js";
import { UpstreamBalancer } from "./upstream-balancer.js";

/** A route as the data plane serves it: the route and what serving it needs, built once. */
export interface ServedRoute {
  readonly route: Readonly<Route>;
  readonly balancer: UpstreamBalancer;
  /** undefined: every client address is allowed. */
  readonly allowList: ClientAllowList | undefined;
  /** The permit cookie's name: one per route, since a browser's cookies ignore ports. */
  readonly permitCookie: string;
}

/** The routes in force, by how requests find them. Read it within one turn of the event loop. */
export interface RouteIndex {
  readonly version: number;
  readonly byId: ReadonlyMap<string, ServedRoute>;
  readonly byPort: ReadonlyMap<number, ServedRoute>;
  /** Wildcard mode: lowercase subdomain → route. */
  readonly bySubdomain: ReadonlyMap<string, ServedRoute>;
}

/** A route of a change made ready to serve (or found unservable) before the change is put in force. */
export type PreparedRoute =
  | { readonly served: ServedRoute; readonly refusal?: undefined }
  | { readonly route: Readonly<Route>; readonly refusal: string };

export interface IndexUpdate {
  /** Routes of the change the worker will not serve, with why. */
  refused: { id: string; reason: string }[];
  /**
   * Ids of routes that stopped being served at the address they had (deleted, moved away, moved
   * to another port or subdomain, or refused now): their open connections are to be drained.
   */
  departed: string[];
  /** Routes served with a balancer they did not have before (new, or new upstreams). */
  started: ServedRoute[];
  /** Balancers no route uses any more. */
  retired: UpstreamBalancer[];
}

/** `appproxy_permit_` and 16 hex characters of the id's SHA-256: a valid cookie name for any id. */
export function permitCookieName(routeId: string): string {
  return `appproxy_permit_${createHash("sha256").update(routeId).digest("hex").slice(0, 16)}`;
}

/**
 * The worker's lookup index. A change is taken in two steps so that a large one never holds the
 * event loop: `prepare` builds what serving each upserted route needs (in as many slices as the
 * caller likes, reading but not touching the index), then `commit` puts the whole change in force
 * in one call — within one turn of the event loop no request sees half a change. Both cost work
 * in proportion to the change, not to the table: untouched routes keep their ServedRoute (and so
 * their balancer's state); a changed route keeps its balancer while its upstreams and health check
 * are the same.
 */
export class ServingIndex implements RouteIndex {
  readonly #byId = new Map<string, ServedRoute>();
  readonly #byPort = new Map<number, ServedRoute>();
  readonly #bySubdomain = new Map<string, ServedRoute>();
  #version = 0;

  constructor(private readonly scope: ServingScope) {}

  get version(): number {
    return this.#version;
  }

  get byId(): ReadonlyMap<string, ServedRoute> {
    return this.#byId;
  }

  get byPort(): ReadonlyMap<number, ServedRoute> {
    return this.#byPort;
  }

  get bySubdomain(): ReadonlyMap<string, ServedRoute> {
    return this.#bySubdomain;
  }

  /** What serving `routes` would take, against the routes in force now. Changes nothing. */
  prepare(routes: readonly Readonly<Route>[]): PreparedRoute[] {
    return routes.map((route) => {
      const refusal = refusalOf(route, this.scope);
      if (refusal !== undefined) return { route, refusal };
      return { served: serve(route, this.#byId.get(route.id)) };
    });
  }

  /**
   * Puts a change in force: `deletes` first, then the prepared upserts. Prepared routes must come
   * from `prepare` on this index with no commit in between.
   */
  commit(
    version: number,
    prepared: readonly PreparedRoute[],
    deletes: readonly string[],
  ): IndexUpdate {
    const update: IndexUpdate = { refused: [], departed: [], started: [], retired: [] };
    for (const id of deletes) {
      const before = this.#byId.get(id);
      if (before === undefined) continue;
      this.#remove(before);
      update.departed.push(id);
      update.retired.push(before.balancer);
    }
    // Addresses are taken after every old one is given up: a port or subdomain can change hands
    // within a change.
    const placed: ServedRoute[] = [];
    for (const entry of prepared) {
      const id = entry.refusal === undefined ? entry.served.route.id : entry.route.id;
      const before = this.#byId.get(id);
      if (before !== undefined) this.#unaddress(before);
      if (entry.refusal !== undefined) {
        update.refused.push({ id, reason: entry.refusal });
        if (before !== undefined) {
          this.#byId.delete(id);
          update.departed.push(id);
          update.retired.push(before.balancer);
        }
        continue;
      }
      const { served } = entry;
      if (before !== undefined && !sameAddress(before.route, served.route))
        update.departed.push(id);
      if (before?.balancer !== served.balancer) {
        if (before !== undefined) update.retired.push(before.balancer);
        update.started.push(served);
      }
      this.#byId.set(id, served);
      placed.push(served);
    }
    for (const served of placed) this.#address(served);
    this.#version = version;
    return update;
  }

  /** `prepare` and `commit` at once: for changes small enough to take in one turn. */
  apply(change: TableChange): IndexUpdate {
    return this.commit(change.to, this.prepare(change.upserts), change.deletes);
  }

  #remove(served: ServedRoute): void {
    this.#byId.delete(served.route.id);
    this.#unaddress(served);
  }

  #address(served: ServedRoute): void {
    const { port, subdomain } = served.route;
    if (this.scope.frontendMode === "port" && port !== null) this.#byPort.set(port, served);
    if (this.scope.frontendMode === "wildcard" && subdomain !== null) {
      this.#bySubdomain.set(subdomain.toLowerCase(), served);
    }
  }

  /** Gives up the address `served` holds, unless another route holds it by now. */
  #unaddress(served: ServedRoute): void {
    const { port, subdomain } = served.route;
    if (port !== null && this.#byPort.get(port) === served) this.#byPort.delete(port);
    if (subdomain !== null) {
      const key = subdomain.toLowerCase();
      if (this.#bySubdomain.get(key) === served) this.#bySubdomain.delete(key);
    }
  }
}

function serve(route: Readonly<Route>, before: ServedRoute | undefined): ServedRoute {
  const keepBalancer =
    before !== undefined &&
    JSON.stringify(before.route.upstreams) === JSON.stringify(route.upstreams) &&
    JSON.stringify(before.route.health_check ?? null) ===
      JSON.stringify(route.health_check ?? null);
  return {
    route,
    balancer: keepBalancer ? before.balancer : new UpstreamBalancer(route.upstreams),
    allowList: compileAllowList(route.allowed_client_ips ?? []),
    permitCookie: before?.permitCookie ?? permitCookieName(route.id),
  };
}

function sameAddress(a: Readonly<Route>, b: Readonly<Route>): boolean {
  return a.port === b.port && a.subdomain === b.subdomain && a.protocol === b.protocol;
}

/** The subdomain a Host header names under `domain` (case-insensitive, port ignored), if any. */
export function subdomainOfHost(host: string | undefined, domain: string): string | undefined {
  if (host === undefined) return undefined;
  let name = host.toLowerCase();
  if (name.startsWith("[")) return undefined; // an IPv6 literal names no subdomain
  const colon = name.lastIndexOf(":");
  if (colon !== -1) name = name.slice(0, colon);
  if (name.endsWith(".")) name = name.slice(0, -1);
  const suffix = `.${domain}`;
  if (!name.endsWith(suffix)) return undefined;
  const subdomain = name.slice(0, -suffix.length);
  return subdomain === "" || subdomain.includes(".") ? undefined : subdomain;
}
