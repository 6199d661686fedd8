import type { IncomingHttpHeaders } from "node:http";
import { parse as parseCookies } from "cookie";
import type { AccessPermit, AccessTokenVerifier } from "../client/access-token.js";
import type { ServedRoute } from "./route-index.js";

/**
 * The data plane's view of token checking: the permit when `token` is a valid, unexpired access
 * token for `routeId`, else undefined (tests put a fake here).
 */
export interface RouteTokenVerifier {
  verify(token: string, routeId: string): Promise<AccessPermit | undefined>;
}

/** The client library's verifier, as the data plane asks it. */
export function routeTokenVerifier(verifier: AccessTokenVerifier): RouteTokenVerifier {
  return {
    verify: async (token, routeId) => {
      const check = await verifier.verify(token, routeId);
      return check.ok ? check.permit : undefined;
    },
  };
}

/** Why a request or connection was turned away (the `reason` label of access_denied_total). */
export type DenialReason = "client_ip" | "missing_token" | "invalid_token";

export type AccessDecision =
  | { allowed: true; stripPermitCookie: boolean; stripAuthorization: boolean }
  | { allowed: false; status: 401 | 403; reason: DenialReason };

/** The credentials a request may carry for one route. */
export interface Credentials {
  cookieToken: string | undefined;
  bearerToken: string | undefined;
}

/** The permit cookie of this route and the token of `Authorization: Bearer`, where present. */
export function credentialsOf(headers: IncomingHttpHeaders, permitCookie: string): Credentials {
  let cookieToken: string | undefined;
  if (headers.cookie !== undefined && headers.cookie.includes(permitCookie)) {
    // Tokens are base64url and dots: taken as written, never URL-decoded.
    cookieToken = parseCookies(headers.cookie, { decode: (value) => value })[permitCookie];
  }
  const authorization = headers.authorization;
  const match = authorization === undefined ? null : /^Bearer +(\S+) *$/i.exec(authorization);
  return { cookieToken: cookieToken || undefined, bearerToken: match?.[1] };
}

/** The client-address rule alone: the only access rule of TCP routes. */
export function clientAllowed(served: ServedRoute, clientAddress: string): boolean {
  return served.allowList === undefined || served.allowList(clientAddress);
}

/**
 * docs/api.md's order ("The proxy worker"): outside allowed_client_ips → 403; open_to_public → served; else a valid access
 * token for this route, as the permit cookie or a bearer token → served; else 401. The permit
 * cookie always leaves the request; `Authorization` leaves only when it carried a valid access
 * token of this route (an app's own bearer credentials pass).
 */
export async function decideAccess(
  served: ServedRoute,
  clientAddress: string,
  credentials: Credentials,
  verifier: RouteTokenVerifier,
): Promise<AccessDecision> {
  if (!clientAllowed(served, clientAddress)) {
    return { allowed: false, status: 403, reason: "client_ip" };
  }
  const routeId = served.route.id;
  const bearerPermit =
    credentials.bearerToken === undefined
      ? undefined
      : await verifier.verify(credentials.bearerToken, routeId);
  const stripPermitCookie = credentials.cookieToken !== undefined;
  const stripAuthorization = bearerPermit !== undefined;
  if (served.route.open_to_public === true || bearerPermit !== undefined) {
    return { allowed: true, stripPermitCookie, stripAuthorization };
  }
  if (credentials.cookieToken !== undefined) {
    const cookiePermit = await verifier.verify(credentials.cookieToken, routeId);
    if (cookiePermit !== undefined) return { allowed: true, stripPermitCookie, stripAuthorization };
    return { allowed: false, status: 401, reason: "invalid_token" };
  }
  const reason = credentials.bearerToken === undefined ? "missing_token" : "invalid_token";
  return { allowed: false, status: 401, reason };
}
