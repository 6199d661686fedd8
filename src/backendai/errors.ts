import type { ErrorRequestHandler, RequestHandler, Response } from "express";
import { isAppError, type AppError } from "../errors.js";
import { translateDatabaseError } from "../db/pg-errors.js";
import type { Logger } from "../logger.js";

/**
 * An error as Backend.AI's App Proxy coordinator answers it: its RFC 7807 body
 * (`{type, title, error_code, msg?, data?}`) with the status its Manager and web UI expect.
 */
export class BackendAiError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    readonly title: string,
    readonly errorCode: string,
    readonly msg?: string,
    readonly data?: unknown,
  ) {
    super(msg ?? title);
    this.name = "BackendAiError";
  }
}

const PROBLEMS = "https://api.backend.ai/probs/";

export const authFailed = (msg = "Unauthorized access") =>
  new BackendAiError(
    401,
    "auth-failed",
    "Credential/signature mismatch.",
    "agent_auth_unauthorized",
    msg,
  );
export const invalidCredentials = (msg: string) =>
  new BackendAiError(
    401,
    "invalid-credentials",
    "Authentication credentials not valid.",
    "agent_auth_unauthorized",
    msg,
  );

/** One field that failed validation, in the shape pydantic's `errors()` gives. */
export interface FieldError {
  type: string;
  loc: Array<string | number>;
  msg: string;
}

export const invalidParams = (msg: string, errors?: FieldError[]) =>
  new BackendAiError(
    400,
    "invalid-api-params",
    "Missing or invalid API parameters.",
    "agent_request_invalid-parameters",
    msg,
    errors ? { errors } : undefined,
  );
export const objectNotFound = (objectName: string, msg?: string) =>
  new BackendAiError(
    404,
    "object-not-found",
    `E00002: No such ${objectName}.`,
    "agent_read_not-found",
    msg,
  );
export const urlNotFound = (path: string) =>
  new BackendAiError(
    404,
    "url-not-found",
    "Unknown URL path.",
    "agent_request_not-found",
    undefined,
    path,
  );
const workerNotAvailable = (msg: string) =>
  new BackendAiError(
    503,
    "appproxy/worker-not-available",
    "Worker not available.",
    "agent_access_not-found",
    msg,
  );
const portNotAvailable = (msg: string) =>
  new BackendAiError(
    409,
    "appproxy/port-not-available",
    "Designated port already occupied.",
    "agent_setup_already-exists",
    msg,
  );
const internal = () =>
  new BackendAiError(
    500,
    "internal-server-error",
    "Internal server error.",
    "agent_generic_internal-error",
  );

/** The coordinator's own errors, in their words: what their callers branch on is the status. */
function fromAppError(error: AppError): BackendAiError {
  const fields = error.extra.errors?.map((e) => ({
    type: "value_error",
    loc: e.path.split(".").map((part) => (/^\d+$/.test(part) ? Number(part) : part)),
    msg: e.message,
  }));
  switch (error.status) {
    case 400:
    case 413:
    case 415:
    case 422:
      return invalidParams(error.message, fields);
    case 401:
      return authFailed(error.message);
    case 404:
      return objectNotFound("object", error.message);
    case 409:
      return portNotAvailable(error.message);
    case 503:
      return workerNotAvailable(error.message);
    default:
      return internal();
  }
}

export function sendBackendAiError(res: Response, error: BackendAiError): void {
  res
    .status(error.status)
    .type("application/problem+json")
    .send(
      JSON.stringify({
        type: `${PROBLEMS}${error.kind}`,
        title: error.title,
        error_code: error.errorCode,
        ...(error.msg !== undefined ? { msg: error.msg } : {}),
        ...(error.data !== undefined ? { data: error.data } : {}),
      }),
    );
}

/** Body-parser's refusals: a body that is not JSON is their "Malformed body". */
function fromBodyParser(error: unknown): BackendAiError | undefined {
  if (typeof error !== "object" || error === null) return undefined;
  const { type } = error as { type?: unknown };
  if (type === "entity.parse.failed" || type === "entity.verify.failed") {
    return invalidParams("Malformed body");
  }
  if (type === "entity.too.large") return invalidParams("The body is larger than 1 MiB.");
  if (typeof type === "string") return invalidParams("The body could not be read.");
  // Express refuses a path parameter that is not valid percent-encoding with a 400 of its own.
  const { status } = error as { status?: unknown };
  if (status === 400) return invalidParams("The path is not valid percent-encoded UTF-8.");
  return undefined;
}

export const unknownBackendAiPath: RequestHandler = (req) => {
  throw urlNotFound(req.path);
};

/** The listener's one error handler: every error leaves in their shape, nothing internal shown. */
export function backendAiErrorHandler(logger: Logger): ErrorRequestHandler {
  return (error: unknown, req, res, next) => {
    if (res.headersSent) return next(error);
    if (error instanceof BackendAiError) return sendBackendAiError(res, error);
    const parsed = isAppError(error) ? undefined : fromBodyParser(error);
    if (parsed) return sendBackendAiError(res, parsed);
    const known = translateDatabaseError(error);
    if (isAppError(known)) {
      if (known.status >= 500) logger.warn("backend.ai request failed", { detail: known.message });
      return sendBackendAiError(res, fromAppError(known));
    }
    logger.error("unhandled error on the backend.ai listener", {
      request_id: res.locals.requestId,
      method: req.method,
      path: req.path,
      error: error instanceof Error ? { name: error.name, message: error.message } : String(error),
    });
    sendBackendAiError(res, internal());
  };
}
