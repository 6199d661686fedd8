import { AppError, conflict, isAppError, unavailable } from "../errors.js";

interface DriverError {
  code?: unknown;
  constraint?: unknown;
  message?: unknown;
}

const CONNECTION_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EPIPE",
  "57P01", // admin_shutdown
  "57P02",
  "57P03", // cannot_connect_now
  "53300", // too_many_connections
]);

const CONSTRAINT_MESSAGES: Record<string, string> = {
  routes_worker_port_unique: "The port is already taken on that worker.",
  routes_domain_subdomain_unique: "The subdomain is already taken on that wildcard domain.",
  workers_name_unique: "A worker with that name already exists.",
  routes_pkey: "A route with that id already exists.",
};

/**
 * Driver messages of the same, for errors that carry no SQLSTATE: node-postgres' own ("Connection
 * terminated unexpectedly", a client "not queryable" after its connection failed), knex's pool's,
 * PGlite's.
 */
const CONNECTION_MESSAGES =
  /Connection terminated|Connection ended unexpectedly|connection is closed|is not queryable|Knex: Timeout acquiring a connection|PGlite is closed/i;

/** True for errors that mean the database could not be reached or dropped us. */
export function isConnectionError(error: unknown): boolean {
  if (typeof error !== "object" || error === null || isAppError(error)) return false;
  const { code, message } = error as DriverError;
  const text = typeof message === "string" ? message : "";
  if (typeof code === "string" && SQLSTATE.test(code)) {
    // PostgreSQL answered: only its codes say what happened (a message may quote anyone's text).
    if (CONNECTION_CODES.has(code) || code.startsWith("08")) return true;
    return code === "55000" && /is not currently accepting connections/.test(text);
  }
  if (typeof code === "string" && CONNECTION_CODES.has(code)) return true;
  return CONNECTION_MESSAGES.test(text);
}

/**
 * A PostgreSQL error code: five digits or capital letters, in no class that starts with E, so
 * that node's system codes (EPIPE, ECONNRESET, …) are not taken for one.
 */
const SQLSTATE = /^[0-9A-DF-Z][0-9A-Z]{4}$/;

/** Translates driver errors so that services never see PostgreSQL codes. */
export function translateDatabaseError(error: unknown): unknown {
  if (isAppError(error)) return error;
  if (typeof error === "object" && error !== null) {
    const { code, constraint } = error as DriverError;
    if (code === "23505") {
      const name = typeof constraint === "string" ? constraint : "";
      return conflict(CONSTRAINT_MESSAGES[name] ?? "That value is already taken.");
    }
  }
  if (isConnectionError(error)) return unavailable("The database is unreachable; try again.");
  return error;
}

export type { AppError };
