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
 * Driver messages of the same, for errors that carry no code: node-postgres' own ("Connection
 * terminated unexpectedly", a client "not queryable" after its connection failed), knex's pool,
 * PGlite's, and PostgreSQL's refusal of a database closed to connections (SQLSTATE 55000, which
 * also names errors that have nothing to do with connections).
 */
const CONNECTION_MESSAGES =
  /Connection terminated|Connection ended unexpectedly|connection is closed|is not queryable|is not currently accepting connections|Knex: Timeout acquiring a connection|PGlite is closed/i;

/** True for errors that mean the database could not be reached or dropped us. */
export function isConnectionError(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, message } = error as DriverError;
  if (typeof code === "string" && (CONNECTION_CODES.has(code) || code.startsWith("08"))) {
    return true;
  }
  return typeof message === "string" && CONNECTION_MESSAGES.test(message);
}

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
