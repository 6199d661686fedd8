import { randomUUID } from "node:crypto";
import type { RequestHandler } from "express";
import type { Logger } from "../logger.js";

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** Takes or makes X-Request-Id, returns it, and logs one line per request when it ends. */
export function requestLog(
  logger: Logger,
  observe?: (method: string, route: string, status: number, seconds: number) => void,
): RequestHandler {
  return (req, res, next) => {
    const given = req.get("x-request-id");
    const requestId = given && REQUEST_ID.test(given) ? given : randomUUID();
    res.locals.requestId = requestId;
    res.setHeader("X-Request-Id", requestId);
    const started = process.hrtime.bigint();
    // For the stages of a change (ops/change-stages.ts), on the committer's clock.
    res.locals.receivedAt = performance.now();
    res.on("finish", () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const route = routeTemplate(req.baseUrl, req.route as { path?: unknown } | undefined);
      observe?.(req.method, route, res.statusCode, seconds);
      if (!logger.isInfoEnabled()) return;
      logger.info("request", {
        request_id: requestId,
        method: req.method,
        path: req.path,
        route,
        status: res.statusCode,
        duration_ms: Math.round(seconds * 1e6) / 1e3,
      });
    });
    next();
  };
}

/** The path template that served a request (never an id), or "unmatched". */
function routeTemplate(baseUrl: string, route: { path?: unknown } | undefined): string {
  if (!route || typeof route.path !== "string") return "unmatched";
  return `${baseUrl}${route.path}` || "/";
}
