import type { RequestHandler } from "express";
import type { Knex } from "knex";
import {
  authorizationOf,
  bearerToken,
  hasWorkerTokenForm,
  type TokenRegistry,
} from "../auth/tokens.js";
import { findWorker } from "../workers/repository.js";

/**
 * Notes in `res.locals.removedWorkerId` that the request's worker token names a worker that no
 * longer exists, so that `requireRole` refuses it with 404, as its stream is: the worker is gone,
 * which is what the caller needs to hear (it registers anew), not that its role may not do this
 * (403). Paths open to anyone ignore it. Only requests carrying a worker token pay the lookup;
 * workers speak HTTP only to register, so that is rare.
 */
export function removedWorkerToken(knex: Knex, tokens: TokenRegistry): RequestHandler {
  return (req, res, next) => {
    const token = bearerToken(authorizationOf(req));
    if (!token || !hasWorkerTokenForm(token)) return next();
    const principal = tokens.identify(token);
    if (principal?.role !== "worker") return next();
    findWorker(knex, principal.workerId).then((worker) => {
      if (!worker) res.locals.removedWorkerId = principal.workerId;
      next();
    }, next);
  };
}
