import type { Request, RequestHandler } from "express";
import {
  authorizationOf,
  bearerToken,
  type Principal,
  type Role,
  type TokenRegistry,
} from "../auth/tokens.js";
import { forbidden, notFound, unauthorized } from "../errors.js";

/** The caller, from the bearer token; undefined when there is none or it is unknown. */
export function principalOf(req: Request, tokens: TokenRegistry): Principal | undefined {
  const token = bearerToken(authorizationOf(req));
  return token ? tokens.identify(token) : undefined;
}

/**
 * Lets through callers of the given roles: 401 without a known token, 403 for another role, 404
 * for the token of a removed worker (see removedWorkerToken).
 */
export function requireRole(tokens: TokenRegistry, ...roles: Role[]): RequestHandler {
  return (req, res, next) => {
    const principal = principalOf(req, tokens);
    if (!principal) throw unauthorized();
    if (principal.role === "worker" && res.locals.removedWorkerId === principal.workerId) {
      throw notFound(`Worker ${principal.workerId} does not exist.`);
    }
    if (!roles.includes(principal.role)) throw forbidden();
    res.locals.principal = principal;
    next();
  };
}
