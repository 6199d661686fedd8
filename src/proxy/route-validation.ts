import { isIP } from "node:net";
import proxyaddr from "proxy-addr";
import type { Route, RouteMode } from "../client/route.js";
import type { ServedProtocol } from "./settings.js";

/** What a worker serves: routes outside it are refused, never half-served. */
export interface ServingScope {
  frontendMode: "port" | "wildcard";
  portRange: readonly [number, number] | null;
  protocols: readonly ServedProtocol[];
  modes: readonly RouteMode[];
}

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const HOSTNAME =
  /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;
/** A request target's path: visible ASCII only, so nothing can split or smuggle a request. */
const REQUEST_PATH = /^\/[\x21-\x7e]*$/;

/** A function telling whether a client address is inside a route's allowed_client_ips. */
export type ClientAllowList = (address: string) => boolean;

/**
 * Why the worker will not serve `route`, or undefined when it will. The coordinator validates
 * routes too; the worker checks again every value that reaches a socket or the wire, so a bad
 * table can refuse a route but never inject a header or connect somewhere unintended.
 */
export function refusalOf(route: Readonly<Route>, scope: ServingScope): string | undefined {
  if (!scope.protocols.some((protocol) => protocol === route.protocol)) {
    return `protocol ${route.protocol} is not served by this worker`;
  }
  if (!scope.modes.includes(route.mode)) return `mode ${route.mode} is not served by this worker`;
  if (scope.frontendMode === "port") {
    const range = scope.portRange;
    if (route.port === null || range === null || route.port < range[0] || route.port > range[1]) {
      return `port ${String(route.port)} is outside this worker's range`;
    }
  } else if (route.subdomain === null || !DNS_LABEL.test(route.subdomain)) {
    return `subdomain ${JSON.stringify(route.subdomain)} is not a DNS label`;
  }
  for (const upstream of route.upstreams) {
    if (isIP(upstream.host) === 0 && !HOSTNAME.test(upstream.host)) {
      return `upstream host ${JSON.stringify(upstream.host)} is not a host name or address`;
    }
    if (!Number.isInteger(upstream.weight) || upstream.weight < 0) {
      return `upstream weight ${upstream.weight} is not a whole number >= 0`;
    }
  }
  const check = route.health_check;
  if (check != null && !REQUEST_PATH.test(check.path)) {
    return `health_check.path ${JSON.stringify(check.path)} is not a path of visible ASCII`;
  }
  try {
    compileAllowList(route.allowed_client_ips ?? []);
  } catch {
    return `allowed_client_ips holds an entry that is not an address or CIDR`;
  }
  return undefined;
}

/** undefined for an empty list (everyone allowed); throws on an entry that is not an IP/CIDR. */
export function compileAllowList(entries: readonly string[]): ClientAllowList | undefined {
  if (entries.length === 0) return undefined;
  const matches = proxyaddr.compile([...entries]);
  return (address) => matches(address, 0);
}
