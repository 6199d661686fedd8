import { parseAccessKeySet, type AccessKeySet } from "./access-keys.js";
import { registerUrl } from "./endpoints.js";
import { parseRoute, type Route, type RouteMode, type RouteProtocol } from "./route.js";
import {
  ShapeError,
  expectArray,
  expectInteger,
  expectNonEmptyString,
  expectObject,
  expectPositiveNumber,
  expectString,
  hasField,
  isJsonObject,
  type JsonObject,
} from "./shape.js";

export type FrontendMode = "port" | "wildcard";

/** The body of `POST /workers/register`; omitted optional fields take the coordinator's defaults. */
export interface WorkerRegistration {
  name: string;
  advertised_host: string;
  frontend_mode: FrontendMode;
  port_range?: [number, number] | null;
  wildcard_domain?: string | null;
  wildcard_traffic_port?: number | null;
  protocols?: RouteProtocol[];
  modes?: RouteMode[];
  tls?: boolean;
  capacity?: number | null;
  labels?: Record<string, string>;
  dedicated?: boolean;
}

/** The worker record as the coordinator answered it; only `id` and `name` are relied upon. */
export type RegisteredWorker = JsonObject & { readonly id: string; readonly name: string };

export interface RegistrationAnswer {
  worker: RegisteredWorker;
  token: string;
  stream_url: string;
  heartbeat_interval_s: number;
  version: number;
  routes: Route[];
  /** The public keys that verify access tokens; absent from coordinators before they had any. */
  access_keys?: AccessKeySet;
}

/**
 * A refused or failed registration. `retryable` is true for what time may cure (network errors,
 * time-outs, 404 from a coordinator being deployed, 408, 429, 5xx) and false for what needs an
 * operator (a bad registration token, an invalid body, a 409: the name belongs to a worker whose
 * token this client does not hold, or the worker's frontend cannot change while it holds routes).
 */
export class RegistrationError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = "RegistrationError";
  }
}

export interface RegisterRequest {
  coordinatorUrl: string;
  registrationToken: string;
  registration: WorkerRegistration;
  /**
   * The worker token of an earlier registration of this name, sent as X-Worker-Token: the
   * coordinator answers a known name only to the worker that proves it is that worker (else 409).
   * Ignored by the coordinator for a name it does not know (a removed worker registers anew).
   */
  workerToken?: string | undefined;
  timeoutMs: number;
  fetch: typeof globalThis.fetch;
  signal?: AbortSignal;
}

function isRetryableStatus(status: number): boolean {
  return status === 404 || status === 408 || status === 429 || status >= 500;
}

/** Registers (or re-registers, same name, same identity) a worker with the coordinator. */
export async function registerWorker(request: RegisterRequest): Promise<RegistrationAnswer> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), request.timeoutMs);
  const forwardAbort = (): void => abort.abort();
  request.signal?.addEventListener("abort", forwardAbort, { once: true });
  if (request.signal?.aborted) abort.abort();
  try {
    let response: Response;
    let body: unknown;
    try {
      response = await request.fetch(registerUrl(request.coordinatorUrl), {
        method: "POST",
        headers: {
          Authorization: `Bearer ${request.registrationToken}`,
          "Content-Type": "application/json",
          Accept: "application/json",
          ...(request.workerToken === undefined ? {} : { "X-Worker-Token": request.workerToken }),
        },
        body: JSON.stringify(request.registration),
        signal: abort.signal,
      });
      body = await readJson(response);
    } catch (error) {
      const cause =
        abort.signal.aborted && !request.signal?.aborted ? "timed out" : describe(error);
      throw new RegistrationError(`registration failed: ${cause}`, undefined, true);
    }
    if (!response.ok) {
      throw new RegistrationError(
        `registration refused (${response.status}): ${describeProblem(body, response.statusText)}`,
        response.status,
        isRetryableStatus(response.status),
      );
    }
    try {
      return parseRegistrationAnswer(body);
    } catch (error) {
      if (!(error instanceof ShapeError)) throw error;
      throw new RegistrationError(
        `registration answer is malformed: ${error.message}`,
        response.status,
        false,
      );
    }
  } finally {
    clearTimeout(timer);
    request.signal?.removeEventListener("abort", forwardAbort);
  }
}

async function readJson(response: Response): Promise<unknown> {
  const text = await response.text();
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export function parseRegistrationAnswer(value: unknown): RegistrationAnswer {
  const answer = expectObject(value, "");
  const worker = expectObject(answer.worker, "worker");
  const parsed: RegistrationAnswer = {
    worker: {
      ...worker,
      id: expectNonEmptyString(worker.id, "worker.id"),
      name: expectString(worker.name, "worker.name"),
    },
    token: expectNonEmptyString(answer.token, "token"),
    stream_url: expectString(answer.stream_url, "stream_url"),
    heartbeat_interval_s: expectPositiveNumber(answer.heartbeat_interval_s, "heartbeat_interval_s"),
    version: expectInteger(answer.version, "version"),
    routes: expectArray(answer.routes, "routes", parseRoute),
  };
  if (hasField(answer, "access_keys")) {
    parsed.access_keys = parseAccessKeySet(answer.access_keys, "access_keys");
  }
  return parsed;
}

/** A one-line summary of an RFC 9457 problem body, naming every invalid field. */
function describeProblem(body: unknown, fallback: string): string {
  if (!isJsonObject(body)) return typeof body === "string" && body ? body : fallback;
  const parts = [body.title, body.detail].filter(
    (part): part is string => typeof part === "string",
  );
  if (Array.isArray(body.errors)) {
    for (const entry of body.errors) {
      if (isJsonObject(entry) && typeof entry.message === "string") {
        parts.push(
          typeof entry.path === "string" ? `${entry.path}: ${entry.message}` : entry.message,
        );
      }
    }
  }
  return parts.length > 0 ? parts.join("; ") : fallback;
}

function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  // fetch wraps the interesting part (ECONNREFUSED, …) in `cause`.
  const cause: unknown = error.cause;
  return cause instanceof Error ? `${error.message} (${cause.message})` : error.message;
}
