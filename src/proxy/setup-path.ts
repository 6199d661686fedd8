import type http from "node:http";
import { serialize } from "cookie";
import { AppError, badRequest, forbidden, unauthorized } from "../errors.js";
import { clientAllowed } from "./access.js";
import type { DataPlane } from "./data-plane.js";
import { writeProblem } from "./proxy-problem.js";
import type { ServedRoute } from "./route-index.js";

/** The path on every HTTP route that turns an access token into the route's permit cookie. */
export const SETUP_PATH = "/_appproxy/setup";

/** An origin no request can name, to resolve a redirect against and see whether it stays. */
const PROBE_ORIGIN = "http://route.appproxy.invalid";

/**
 * The path a setup request may redirect to: the route's root by default, otherwise a path on the
 * same route. undefined for anything that could leave it (another origin, `//host`, `/\host`,
 * a scheme, control characters or whitespace that browsers strip).
 */
export function sameRouteRedirect(redirect: string | null): string | undefined {
  if (redirect === null || redirect === "") return "/";
  if (!redirect.startsWith("/") || /[\\\s\p{Cc}]/u.test(redirect)) return undefined;
  if (!URL.canParse(redirect, PROBE_ORIGIN)) return undefined;
  const resolved = new URL(redirect, PROBE_ORIGIN);
  if (resolved.origin !== PROBE_ORIGIN) return undefined;
  return `${resolved.pathname}${resolved.search}${resolved.hash}`;
}

/**
 * `GET /_appproxy/setup?token=…&redirect=…`: a valid access token for this route becomes the
 * route's permit cookie (HttpOnly, SameSite=Lax, Path=/, Secure over TLS, until the token's
 * exp), answered with 302 to `redirect`. A bad, expired or other route's token: 401, no cookie.
 */
export async function serveSetup(
  plane: DataPlane,
  served: ServedRoute,
  clientAddress: string,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): Promise<void> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    writeProblem(
      res,
      new AppError(405, "method_not_allowed", "Method Not Allowed", "The setup path takes GET.", {
        headers: { Allow: "GET, HEAD" },
      }),
    );
    return;
  }
  if (!clientAllowed(served, clientAddress)) {
    plane.metrics.denied("client_ip");
    writeProblem(res, forbidden("This client address may not reach this route."));
    return;
  }
  const query = new URL(req.url ?? "/", PROBE_ORIGIN).searchParams;
  const location = sameRouteRedirect(query.get("redirect"));
  if (location === undefined) {
    writeProblem(
      res,
      badRequest("redirect must be a path on this route.", [
        { path: "redirect", message: "a path on this route, starting with a single /" },
      ]),
    );
    return;
  }
  const token = query.get("token");
  const permit =
    token === null || token === ""
      ? undefined
      : await plane.verifier.verify(token, served.route.id);
  if (token === null || permit === undefined) {
    plane.metrics.denied(token === null || token === "" ? "missing_token" : "invalid_token");
    writeProblem(res, unauthorized("The token is not a valid access token for this route."));
    return;
  }
  const cookie = serialize(served.permitCookie, token, {
    httpOnly: true,
    sameSite: "lax",
    path: "/",
    secure: plane.tls,
    expires: new Date(permit.exp * 1000),
  });
  if (res.destroyed) return;
  res.writeHead(302, {
    location,
    "set-cookie": cookie,
    "cache-control": "no-store",
    "content-length": 0,
  });
  res.end();
}
