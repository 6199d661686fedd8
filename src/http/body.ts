import express, { type Request, type RequestHandler } from "express";
import { badRequest, payloadTooLarge, unsupportedMediaType, type AppError } from "../errors.js";

export const BODY_LIMIT_BYTES = 1024 * 1024;

const isJson = (type: string | undefined) =>
  !!type && /^application\/([a-z0-9.+-]*\+)?json(\s*;.*)?$/i.test(type.trim());

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i;

const hasBody = (req: Request) =>
  req.headers["transfer-encoding"] !== undefined || Number(req.headers["content-length"] ?? 0) > 0;

/**
 * Plain UTF-8 JSON, not compressed: nearly every request. These are read here; the rest
 * (gzip, deflate, br; another charset) go through body-parser, which inflates and decodes them.
 */
function isPlainUtf8(req: Request): boolean {
  const encoding = req.headers["content-encoding"];
  if (encoding !== undefined && encoding.toLowerCase() !== "identity") return false;
  const charset = CHARSET.exec(req.headers["content-type"] ?? "")?.[1];
  return charset === undefined || charset.toLowerCase() === "utf-8";
}

/** JSON.parse under body-parser's strict rule: an object or an array, or an empty body. */
function parseStrict(text: string): unknown {
  if (text.length === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw badRequest("The body is not valid JSON.");
  }
  if (typeof value !== "object" || value === null) {
    throw badRequest("The body must be a JSON object, not a bare value.");
  }
  return value;
}

/** UTF-8 that refuses broken byte sequences instead of turning them into U+FFFD; drops a BOM. */
const utf8 = new TextDecoder("utf-8", { fatal: true });

function decodeUtf8(bytes: Buffer): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw badRequest("The body is not valid UTF-8.");
  }
}

/**
 * Reads a plain UTF-8 body into `req.body`, refusing one over the limit with 413 once the client
 * has finished sending it (answering mid-upload would reset the connection under the client).
 */
function readPlain(req: Request, done: (error?: AppError) => void): void {
  const declared = req.headers["content-length"];
  let failure: AppError | undefined =
    declared !== undefined && Number(declared) > BODY_LIMIT_BYTES
      ? payloadTooLarge("The body is larger than 1 MiB.")
      : undefined;
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (error?: AppError) => {
    if (finished) return;
    finished = true;
    req.off("data", onData);
    done(error);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > BODY_LIMIT_BYTES) failure ??= payloadTooLarge("The body is larger than 1 MiB.");
    if (failure === undefined) chunks.push(chunk);
  };
  req.on("data", onData);
  req.once("end", () => {
    if (failure) return finish(failure);
    try {
      req.body = parseStrict(decodeUtf8(Buffer.concat(chunks, received)));
    } catch (error) {
      return finish(error as AppError);
    }
    finish();
  });
  req.once("aborted", () => finish(badRequest("The request was aborted.")));
  req.once("error", () => finish(badRequest("The body could not be read.")));
}

/** A request with a body must say it is JSON (415 otherwise); bodies over 1 MiB are refused. */
export function jsonBody(): RequestHandler {
  const general = express.json({
    limit: BODY_LIMIT_BYTES,
    strict: true,
    type: () => true,
    // Inflated bodies too: broken UTF-8 is refused, not read as U+FFFD.
    verify: (_req, _res, bytes, encoding) => {
      if (/^utf-?8$/i.test(encoding)) utf8.decode(bytes);
    },
  });
  return (req, res, next) => {
    if (!hasBody(req)) return general(req, res, next);
    if (!isJson(req.headers["content-type"])) {
      return next(unsupportedMediaType("The body must be JSON (Content-Type: application/json)."));
    }
    if (!isPlainUtf8(req)) return general(req, res, next);
    readPlain(req, (error) => (error ? next(error) : next()));
  };
}
