import type { RequestHandler } from "express";
import type { TokenRegistry } from "../auth/tokens.js";
import { badRequest, unauthorized } from "../errors.js";
import { principalOf } from "./auth.js";

/**
 * A path that is not valid percent-encoded UTF-8 names nothing the coordinator serves. It is
 * refused before routing, where Express would fail to decode its ids: 401 to a caller without a
 * known token, as every endpoint answers such a caller first, else 400.
 */
export function undecodablePath(tokens: TokenRegistry): RequestHandler {
  return (req, _res, next) => {
    if (!req.path.includes("%")) return next();
    try {
      decodeURIComponent(req.path);
    } catch {
      return next(
        principalOf(req, tokens)
          ? badRequest("The path is not valid percent-encoded UTF-8.")
          : unauthorized(),
      );
    }
    next();
  };
}
