import { describe, expect, it } from "vitest";
import { conflict, isAppError } from "../../src/errors.js";
import { isConnectionError, translateDatabaseError } from "../../src/db/pg-errors.js";

const withCode = (code: string, message = "") => Object.assign(new Error(message), { code });

describe("database errors", () => {
  it.each([
    ["a refused connection", withCode("ECONNREFUSED")],
    ["a connection-class SQLSTATE", withCode("08006", "connection failure")],
    ["an administrator's termination", withCode("57P01", "terminating connection")],
    ["a server starting up", withCode("57P03", "the database system is starting up")],
    ["a dropped connection", new Error("Connection terminated unexpectedly")],
    ["a connection ended", new Error("Connection ended unexpectedly")],
    [
      "a client used after its connection failed",
      new Error("Client has encountered a connection error and is not queryable"),
    ],
    [
      "a database closed to connections",
      withCode("55000", 'database "appproxy" is not currently accepting connections'),
    ],
    ["an exhausted pool", new Error("Knex: Timeout acquiring a connection. The pool is full.")],
  ])("counts %s as the database being unreachable: 503", (_what, error) => {
    expect(isConnectionError(error)).toBe(true);
    const translated = translateDatabaseError(error);
    expect(isAppError(translated) && translated.status).toBe(503);
  });

  it("leaves other errors alone, and answers unique violations 409", () => {
    const other = withCode("55000", "cannot lock rows in materialized view");
    expect(isConnectionError(other)).toBe(false);
    // PostgreSQL's own code decides, whatever text of the caller's its message quotes.
    const quoting = withCode("22P02", 'invalid input syntax for type uuid: "connection is closed"');
    expect(isConnectionError(quoting)).toBe(false);
    expect(isConnectionError(conflict("Connection terminated: a route of that name"))).toBe(false);
    expect(translateDatabaseError(other)).toBe(other);
    const taken = Object.assign(withCode("23505"), { constraint: "routes_worker_port_unique" });
    const translated = translateDatabaseError(taken);
    expect(isAppError(translated) && translated.status).toBe(409);
  });
});
