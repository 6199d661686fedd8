import type { Knex } from "knex";
import {
  distrustPrepared,
  isPreparedStateError,
  mustRecount,
  recounted,
  statementText,
  unpreparedOn,
  type Statement,
} from "./prepared.js";

/** A row as the driver hands it back. */
export type Row = Record<string, unknown>;

/** A value that goes into a statement as a JSON document (cast it with `::jsonb`). */
export class Json {
  constructor(readonly value: unknown) {}
}

export const json = (value: unknown) => new Json(value);

function arrayElement(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (typeof value === "number") return literalNumber(value);
  return `"${String(value).replace(/[\\"]/g, (c) => `\\${c}`)}"`;
}

/**
 * A string literal as libpq's PQescapeLiteral writes it: quotes doubled, and with backslashes
 * doubled in an E'' literal, so it reads the same whatever standard_conforming_strings says.
 * (pg's escapeLiteral does the same one character at a time; this is its speed on long JSON.)
 */
function quote(text: string): string {
  const quoted = `'${text.replace(/'/g, "''")}'`;
  return text.includes("\\") ? ` E${quoted.replace(/\\/g, "\\\\")}` : quoted;
}

function literalNumber(value: number): string {
  if (!Number.isFinite(value)) throw new TypeError(`not a finite number: ${value}`);
  return String(value);
}

/**
 * A value as an SQL literal, escaped the way PostgreSQL's own client does: strings quoted, JS
 * arrays as array literals (cast them, e.g. `::uuid[]`), `json(...)` as a JSON text literal.
 */
export function literal(value: unknown): string {
  if (value === null || value === undefined) return "NULL";
  if (value instanceof Json) return quote(JSON.stringify(value.value));
  if (value instanceof Date) return quote(value.toISOString());
  if (Array.isArray(value)) return quote(`{${value.map(arrayElement).join(",")}}`);
  switch (typeof value) {
    case "number":
      return literalNumber(value);
    case "boolean":
      return value ? "TRUE" : "FALSE";
    case "string":
      return quote(value);
    default:
      throw new TypeError(`no SQL literal for a ${typeof value}`);
  }
}

/**
 * One statement with its values written in as literals, for scripts sent in one round trip
 * (PostgreSQL's simple query protocol takes several statements, but no bound parameters).
 */
export function sql(strings: TemplateStringsArray, ...values: unknown[]): string {
  let text = strings[0]!;
  values.forEach((value, i) => (text += literal(value) + strings[i + 1]!));
  return text;
}

interface PgResult {
  rows: Row[];
}

/** What a driver connection offers: node-postgres' Client, or PGlite. */
interface RawConnection {
  query(text: string): Promise<PgResult | PgResult[]>;
  exec?(text: string): Promise<PgResult[]>;
  __knex__disposed?: unknown;
}

/**
 * One connection of knex's pool, held for several scripts: a transaction that spans them, with
 * each script's statements sent together and its rows handed back per statement.
 */
export class ScriptSession {
  private constructor(
    private readonly knex: Knex,
    private readonly connection: RawConnection,
  ) {}

  static async open(knex: Knex): Promise<ScriptSession> {
    const connection = (await knex.client.acquireConnection()) as RawConnection;
    return new ScriptSession(knex, connection);
  }

  /** Runs the statements in one round trip; the rows of each, in order. */
  async run(statements: Statement[]): Promise<Row[][]> {
    if (statements.length === 0) return [];
    const result = await this.execute(statements);
    const results = Array.isArray(result) ? result : [result];
    if (results.length !== statements.length) {
      throw new Error(`a script of ${statements.length} statements gave ${results.length} results`);
    }
    return results.map((r) => r.rows);
  }

  /**
   * Runs the statements in one round trip, their rows unread: for a script that ends with
   * `COMMIT`, whose outcome nothing after it may put in doubt.
   */
  async send(statements: Statement[]): Promise<void> {
    if (statements.length > 0) await this.execute(statements);
  }

  private async execute(statements: Statement[]): Promise<PgResult | PgResult[]> {
    const calls = statements.some((s) => typeof s !== "string");
    if (calls) await this.prepare(statements);
    try {
      return await this.script(statements.map(statementText));
    } catch (error) {
      if (calls && isPreparedStateError(error)) this.distrust(error);
      throw error;
    }
  }

  /**
   * Prepares what the statements need and the connection lacks, in a round trip of its own, once
   * per connection and statement. A prepared statement outlives a rollback of the transaction it
   * was prepared in, so the marks stay true whatever becomes of the script.
   */
  private async prepare(statements: Statement[]): Promise<void> {
    if (mustRecount(this.connection)) {
      const result = await this.script(["SELECT name FROM pg_prepared_statements"]);
      const [rows] = Array.isArray(result) ? result : [result];
      recounted(
        this.connection,
        (rows?.rows ?? []).map((r) => String(r.name)),
      );
    }
    const unprepared = unpreparedOn(this.connection, statements);
    if (unprepared.length === 0) return;
    try {
      await this.script(unprepared.map((p) => p.definition));
    } catch (error) {
      // Some may have been prepared before one failed.
      this.distrust(error);
      throw error;
    }
  }

  /**
   * After an error that may leave the connection's prepared statements otherwise than believed:
   * a PostgreSQL connection is closed by the pool; PGlite's only one is asked what it holds
   * before its next script with prepared statements.
   */
  private distrust(error: unknown): void {
    distrustPrepared(this.connection);
    if (this.connection.exec === undefined) this.connection.__knex__disposed = error;
  }

  private script(texts: string[]): Promise<PgResult | PgResult[]> {
    const text = texts.join(";\n");
    const { connection } = this;
    // PGlite's query() takes one statement only; exec() takes a script.
    return connection.exec ? connection.exec(text) : connection.query(text);
  }

  /**
   * Gives the connection back; one that failed with `broken` set is closed by the pool instead
   * of being handed to the next caller.
   */
  async close(broken?: unknown): Promise<void> {
    if (broken !== undefined && this.connection.exec === undefined) {
      this.connection.__knex__disposed = broken;
    }
    await this.knex.client.releaseConnection(this.connection);
  }
}
