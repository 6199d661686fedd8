/** One field that failed validation, as reported in problem+json `errors`. */
export interface FieldProblem {
  path: string;
  message: string;
}

/** An error that the HTTP layer turns into an RFC 9457 problem+json answer. */
export class AppError extends Error {
  /** The routing version when the change was refused under the routing lock, where it was. */
  routingVersion: number | undefined;

  constructor(
    readonly status: number,
    readonly code: string,
    readonly title: string,
    message: string,
    readonly extra: {
      errors?: FieldProblem[];
      headers?: Record<string, string>;
      details?: Record<string, unknown>;
    } = {},
  ) {
    super(message);
    this.name = "AppError";
  }
}

export const badRequest = (detail: string, errors?: FieldProblem[]) =>
  new AppError(400, "bad_request", "Bad Request", detail, errors ? { errors } : {});
export const validationFailed = (errors: FieldProblem[]) =>
  new AppError(400, "validation", "Validation Failed", "The request has invalid fields.", {
    errors,
  });
export const unauthorized = (detail = "A valid bearer token is required.") =>
  new AppError(401, "unauthorized", "Unauthorized", detail, {
    headers: { "WWW-Authenticate": 'Bearer realm="appproxy"' },
  });
export const forbidden = (detail = "This token may not do that.") =>
  new AppError(403, "forbidden", "Forbidden", detail);
export const notFound = (detail: string) => new AppError(404, "not_found", "Not Found", detail);
export const conflict = (
  detail: string,
  errors?: FieldProblem[],
  details?: Record<string, unknown>,
) =>
  new AppError(409, "conflict", "Conflict", detail, {
    ...(errors ? { errors } : {}),
    ...(details ? { details } : {}),
  });
export const preconditionFailed = (detail: string) =>
  new AppError(412, "precondition_failed", "Precondition Failed", detail);
export const requestTimeout = (detail: string) =>
  new AppError(408, "request_timeout", "Request Timeout", detail);
export const payloadTooLarge = (detail: string) =>
  new AppError(413, "payload_too_large", "Payload Too Large", detail);
export const unsupportedMediaType = (detail: string) =>
  new AppError(415, "unsupported_media_type", "Unsupported Media Type", detail);
export const headersTooLarge = (detail: string) =>
  new AppError(431, "headers_too_large", "Request Header Fields Too Large", detail);
export const unprocessable = (detail: string, errors?: FieldProblem[]) =>
  new AppError(422, "unprocessable", "Unprocessable Content", detail, errors ? { errors } : {});
export const unavailable = (detail: string, retryAfterS = 5) =>
  new AppError(503, "unavailable", "Service Unavailable", detail, {
    headers: { "Retry-After": String(retryAfterS) },
  });

export const isAppError = (e: unknown): e is AppError => e instanceof AppError;
