import express, { type RequestHandler } from "express";
import { unsupportedMediaType } from "../errors.js";

export const BODY_LIMIT_BYTES = 1024 * 1024;

const isJson = (type: string | undefined) =>
  !!type && /^application\/([a-z0-9.+-]*\+)?json(\s*;.*)?$/i.test(type.trim());

/** A request with a body must say it is JSON (415 otherwise); bodies over 1 MiB are refused. */
export function jsonBody(): RequestHandler {
  const parse = express.json({ limit: BODY_LIMIT_BYTES, strict: true, type: () => true });
  const requireJson: RequestHandler = (req, _res, next) => {
    const hasBody =
      req.headers["transfer-encoding"] !== undefined ||
      Number(req.headers["content-length"] ?? 0) > 0;
    if (!hasBody) return next();
    if (!isJson(req.headers["content-type"])) {
      throw unsupportedMediaType("The body must be JSON (Content-Type: application/json).");
    }
    next();
  };
  return (req, res, next) => {
    try {
      requireJson(req, res, (error?: unknown) => (error ? next(error) : parse(req, res, next)));
    } catch (error) {
      next(error);
    }
  };
}
