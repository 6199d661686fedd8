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

/** One immutable lookup index per applied table version; a new one replaces it whole. */
export interface RouteIndex {
  readonly version: number;
  readonly byId: ReadonlyMap<string, ServedRoute>;
  readonly byPort: ReadonlyMap<number, ServedRoute>;
  /** Wildcard mode: lowercase subdomain → route. */
  readonly bySubdomain: ReadonlyMap<string, ServedRoute>;
}

export interface IndexUpdate {
  index: RouteIndex;
  /** Routes of the change the worker will not serve, with why. */
  refused: { id: string; reason: string }[];
  /**
   * Ids of routes that stopped being served at the address they had (deleted, moved away, moved
   * to another port or subdomain, or refused now): their open connections are to be drained.
   */
  departed: string[];
}

export const EMPTY_INDEX: RouteIndex = {
  version: 0,
  byId: new Map(),
  byPort: new Map(),
  bySubdomain: new Map(),
};

/** `appproxy_permit_` and 16 hex characters of the id's SHA-256: a valid cookie name for any id. */
export function permitCookieName(routeId: string): string {
  return `appproxy_permit_${createHash("sha256").update(routeId).digest("hex").slice(0, 16)}`;
}

/**
 * The index after `change`: untouched routes keep their ServedRoute (and so their balancer's
 * state); a changed route keeps its balancer while its upstreams and health check are the same.
 * The previous index is not modified: readers holding it finish with a consistent view.
 */
export function applyChangeToIndex(
  previous: RouteIndex,
  change: TableChange,
  scope: ServingScope,
): IndexUpdate {
  const byId = new Map(previous.byId);
  const departed: string[] = [];
  const refused: { id: string; reason: string }[] = [];
  for (const id of change.deletes) {
    if (byId.delete(id)) departed.push(id);
  }
  for (const route of change.upserts) {
    const before = byId.get(route.id);
    const reason = refusalOf(route, scope);
    if (reason !== undefined) {
      refused.push({ id: route.id, reason });
      if (byId.delete(route.id)) departed.push(route.id);
      continue;
    }
    if (before !== undefined && !sameAddress(before.route, route)) departed.push(route.id);
    byId.set(route.id, serve(route, before));
  }

  // Rebuilt from byId rather than patched: a port or subdomain can change hands within a change.
  const byPort = new Map<number, ServedRoute>();
  const bySubdomain = new Map<string, ServedRoute>();
  for (const served of byId.values()) {
    const { port, subdomain } = served.route;
    if (scope.frontendMode === "port" && port !== null) byPort.set(port, served);
    if (scope.frontendMode === "wildcard" && subdomain !== null) {
      bySubdomain.set(subdomain.toLowerCase(), served);
    }
  }
  return { index: { version: change.to, byId, byPort, bySubdomain }, refused, departed };
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
