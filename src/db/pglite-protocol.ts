/**
 * The messages between the coordinator's thread and the thread that runs PGlite
 * (pglite-host.ts): built and read only here and in the two ends.
 */

/** A query's result as PGlite gives it; rows are structured-cloned across the threads. */
export interface PGliteResult {
  rows: Array<Record<string, unknown>>;
  fields: Array<{ name: string; dataTypeID: number }>;
  affectedRows?: number;
}

/** The options of PGlite's query() that can cross a thread (no callbacks). */
export interface PortableQueryOptions {
  rowMode?: "array" | "object";
  paramTypes?: number[];
}

/** Coordinator's thread → PGlite's thread. */
export type HostRequest =
  | {
      id: number;
      op: "query";
      sql: string;
      params: unknown[] | undefined;
      options: PortableQueryOptions | undefined;
    }
  | { id: number; op: "exec"; sql: string }
  | { id: number; op: "listen"; channel: string; listener: number }
  | { id: number; op: "unlisten"; listener: number }
  | { id: number; op: "close" };

/** An error of the database, its fields (code, constraint, detail, …) kept. */
export interface PortableError {
  message: string;
  name: string;
  fields: Record<string, string | number>;
}

/** PGlite's thread → coordinator's thread. */
export type HostMessage =
  | { kind: "ready" }
  | { kind: "failed"; error: PortableError }
  | { kind: "done"; id: number; result: unknown }
  | { kind: "error"; id: number; error: PortableError }
  | { kind: "notification"; listener: number; payload: string };

/** An error as it can cross to the other thread: its message and its string or number fields. */
export function portableError(error: unknown): PortableError {
  if (!(error instanceof Error)) {
    return { message: String(error), name: "Error", fields: {} };
  }
  const fields: Record<string, string | number> = {};
  for (const [key, value] of Object.entries(error)) {
    if (typeof value === "string" || typeof value === "number") fields[key] = value;
  }
  return { message: error.message, name: error.name, fields };
}

/** The error again, on this side: an Error carrying the same fields (code, constraint, …). */
export function restoredError({ message, name, fields }: PortableError): Error {
  const error = Object.assign(new Error(message), fields);
  error.name = name;
  return error;
}
