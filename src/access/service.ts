import { unprocessable } from "../errors.js";
import type { RouteView } from "../routes/model.js";
import type { RouteService } from "../routes/service.js";
import type { AccessTokenIssuer } from "./issuer.js";
import type { AccessTokenRequest } from "./schema.js";

/** The answer to `POST /routes/{id}/tokens`. */
export interface RouteAccessToken {
  token: string;
  expires_at: string;
  setup_url: string;
  /** The token's `exp` in seconds since the epoch (not part of the HTTP answer). */
  exp: number;
}

/** Where a browser turns `token` into the route's permit cookie: the worker's setup path. */
export function setupUrl(route: Pick<RouteView, "url">, token: string): string {
  const base = route.url.endsWith("/") ? route.url : `${route.url}/`;
  return `${base}_appproxy/setup?token=${encodeURIComponent(token)}`;
}

/** The rules for access tokens: which routes take them, and what a token carries. */
export class AccessTokenService {
  constructor(
    private readonly routes: RouteService,
    private readonly issuer: AccessTokenIssuer,
  ) {}

  /**
   * A token for the route (404 where there is none). TCP routes know no tokens (a worker checks
   * only `allowed_client_ips` on them), so a token for one would be a permit nothing honours:
   * 422 instead.
   */
  async issue(routeId: string, request: AccessTokenRequest): Promise<RouteAccessToken> {
    const route = await this.routes.get(routeId);
    if (route.protocol === "tcp") {
      throw unprocessable(
        `Route ${route.id} is a tcp route: workers admit tcp connections by allowed_client_ips alone, so it takes no access tokens.`,
      );
    }
    const issued = await this.issuer.issue(route.id, request.user_id, request.ttl_s);
    return {
      token: issued.token,
      expires_at: issued.expiresAt.toISOString(),
      setup_url: setupUrl(route, issued.token),
      exp: issued.exp,
    };
  }
}
