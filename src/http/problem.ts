import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import {
  AppError,
  badRequest,
  isAppError,
  notFound,
  payloadTooLarge,
  unsupportedMediaType,
} from "../errors.js";
import type { Logger } from "../logger.js";
import { translateDatabaseError } from "../db/pg-errors.js";

/** An AppError as the RFC 9457 problem+json body every error answer carries. */
export function problemBody(error: AppError): string {
  return JSON.stringify({
    type: `urn:appproxy:problem:${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.message,
    ...(error.extra.errors ? { errors: error.extra.errors } : {}),
    ...(error.extra.details ?? {}),
  });
}

/** Writes an AppError as RFC 9457 problem+json. */
export function sendProblem(res: Response, error: AppError): void {
  for (const [name, value] of Object.entries(error.extra.headers ?? {})) res.setHeader(name, value);
  res.status(error.status).type("application/problem+json").send(problemBody(error));
}

export const unknownPath: RequestHandler = (req) => {
  throw notFound(`No such path: ${req.method} ${req.path}`);
};

/**
 * OPTIONS is served by no path. Express's routers would otherwise answer it themselves, 200 with
 * an `Allow` header and without asking for a token, outside the contract.
 */
export const noOptions: RequestHandler = (req, res, next) => {
  if (req.method === "OPTIONS") unknownPath(req, res, next);
  else next();
};

interface BodyParserError {
  type?: unknown;
  status?: unknown;
}

function fromBodyParser(error: unknown): AppError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { type } = error as BodyParserError;
  if (type === "entity.too.large") return payloadTooLarge("The body is larger than 1 MiB.");
  if (type === "entity.parse.failed") return badRequest("The body is not valid JSON.");
  // body.ts's only verify hook refuses UTF-8 that does not decode.
  if (type === "entity.verify.failed") return badRequest("The body is not valid UTF-8.");
  if (type === "encoding.unsupported" || type === "charset.unsupported") {
    return unsupportedMediaType("The body's encoding or charset is not supported.");
  }
  if (type === "request.aborted") return badRequest("The request was aborted.");
  if (typeof type === "string") return badRequest("The body could not be read.");
  // zlib's own errors reach here unwrapped: a body that its Content-Encoding says is gzip or
  // deflate (Z_DATA_ERROR, Z_BUF_ERROR, …) or br (ERR__ERROR_FORMAT_…), and is not.
  const { code } = error as { code?: unknown };
  if (typeof code === "string" && (code.startsWith("Z_") || code.startsWith("ERR__ERROR_"))) {
    return badRequest("The body is not valid data of its Content-Encoding.");
  }
  return undefined;
}

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/**
 * The one place errors become answers: known ones as problems, anything else as a bare 500. An
 * answer to a mutation carries `X-Routing-Version` also when it failed, a version the refused
 * change did not alter: the one it was refused at under the routing lock, else the newest this
 * instance knows of (`knownVersion`).
 */
export function errorHandler(logger: Logger, knownVersion?: () => number): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    const known = fromBodyParser(error) ?? translateDatabaseError(error);
    // Only to callers of a mutation the app serves who may call it (not for 401, 403 or 404).
    const authorised = !isAppError(known) || (known.status !== 401 && known.status !== 403);
    if (
      knownVersion &&
      MUTATING.has(req.method) &&
      req.route !== undefined &&
      authorised &&
      !res.hasHeader("X-Routing-Version")
    ) {
      const version = (isAppError(known) ? known.routingVersion : undefined) ?? knownVersion();
      if (version >= 0) res.setHeader("X-Routing-Version", String(version));
    }
    if (isAppError(known)) {
      if (known.status >= 500) {
        logger.warn("request failed", { request_id: res.locals.requestId, detail: known.message });
      }
      return sendProblem(res, known);
    }
    logger.error("unhandled error", {
      request_id: res.locals.requestId,
      method: req.method,
      path: req.path,
      error:
        error instanceof Error
          ? { name: error.name, message: error.message, stack: error.stack }
          : String(error),
    });
    sendProblem(
      res,
      new AppError(
        500,
        "internal",
        "Internal Server Error",
        "Something went wrong; it was logged.",
      ),
    );
  };
}
