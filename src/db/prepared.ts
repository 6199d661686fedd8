import type { Knex } from "knex";
import { Json, literal } from "./script.js";

const texts = new Map<string, string>();

/**
 * A statement that PostgreSQL parses, analyses and plans once per connection: scripts run it as
 * `EXECUTE name(values)` once it has been `PREPARE`d there (ScriptSession does that on first
 * use). Scripts go through the simple query protocol, which has no bound parameters; without
 * this, every statement of every group was parsed and planned again, about 40 % of what the
 * database spent on a route creation.
 *
 * `text` names its values `$1`, `$2`, … and `types` gives their types, in order.
 */
export class Prepared {
  constructor(
    readonly name: string,
    readonly types: readonly string[],
    readonly text: string,
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new TypeError(`not a statement name: ${name}`);
    // One name, one statement: a connection knows a statement by its name only.
    const known = texts.get(name);
    if (known !== undefined && known !== text) throw new TypeError(`${name} is another statement`);
    texts.set(name, text);
  }

  get definition(): string {
    const types = this.types.length > 0 ? `(${this.types.join(", ")})` : "";
    return `PREPARE ${this.name}${types} AS ${this.text}`;
  }

  with(...values: unknown[]): Call {
    if (values.length !== this.types.length) {
      throw new TypeError(`${this.name} takes ${this.types.length} values, not ${values.length}`);
    }
    return new Call(this, values);
  }
}

/** A prepared statement with its values: a line of a script. */
export class Call {
  constructor(
    readonly statement: Prepared,
    readonly values: readonly unknown[],
  ) {}

  /** As `EXECUTE`, for a connection where the statement is prepared. */
  execute(): string {
    const { name } = this.statement;
    return this.values.length === 0
      ? `EXECUTE ${name}`
      : `EXECUTE ${name}(${this.values.map(literal).join(", ")})`;
  }

  /**
   * As a statement with bound values, for knex. Not `inline()`: knex reads every `?` of the SQL
   * text as a placeholder, even one inside a string literal, and a route's labels or health-check
   * path may hold one.
   */
  bound(): { sql: string; bindings: Knex.Value[] } {
    const { text, types } = this.statement;
    const bindings: Knex.Value[] = [];
    const sql = text.replace(/\$(\d+)/g, (_, n: string) => {
      const i = Number(n) - 1;
      const value = this.values[i];
      bindings.push(
        value instanceof Json ? JSON.stringify(value.value) : ((value ?? null) as Knex.Value),
      );
      return `(?::${types[i]!})`;
    });
    return { sql, bindings };
  }

  /** As one statement with its values written in, for a script (never for knex: see bound). */
  inline(): string {
    const { text, types } = this.statement;
    return text.replace(/\$(\d+)/g, (_, n: string) => {
      const i = Number(n) - 1;
      return `(${literal(this.values[i])}::${types[i]!})`;
    });
  }
}

/** A line of a script: plain SQL text, or a prepared statement with its values. */
export type Statement = string | Call;

const preparedOn = new WeakMap<object, Set<string>>();

/**
 * The statements `connection` has not prepared yet among those of `statements`, each once, now
 * counted as prepared there: the caller runs their definitions first (a prepared statement
 * outlives a rollback of its transaction), and calls `forgetPrepared` should that fail.
 */
export function unpreparedOn(connection: object, statements: readonly Statement[]): Prepared[] {
  let known = preparedOn.get(connection);
  const missing: Prepared[] = [];
  for (const s of statements) {
    if (typeof s === "string" || known?.has(s.statement.name)) continue;
    if (!known) preparedOn.set(connection, (known = new Set()));
    known.add(s.statement.name);
    missing.push(s.statement);
  }
  return missing;
}

const recount = new WeakSet<object>();

/**
 * Forgets what `connection` holds prepared, after an error that may have left it otherwise than
 * believed: the next script asks the server (`mustRecount`, `recounted`) before preparing more.
 */
export function distrustPrepared(connection: object): void {
  preparedOn.delete(connection);
  recount.add(connection);
}

export const mustRecount = (connection: object): boolean => recount.has(connection);

/** What the server says `connection` holds prepared (the names of pg_prepared_statements). */
export function recounted(connection: object, names: readonly string[]): void {
  preparedOn.set(connection, new Set(names));
  recount.delete(connection);
}

export const statementText = (s: Statement): string => (typeof s === "string" ? s : s.execute());

/** Runs `call` through knex (outside scripts), its values bound. */
export function runCall<R = unknown>(db: Knex | Knex.Transaction, call: Call): Promise<R> {
  const { sql, bindings } = call.bound();
  return db.raw(sql, bindings) as unknown as Promise<R>;
}

/**
 * Errors after which a connection's prepared statements are not what this process believes:
 * one missing (26000), one already there (42P05), or one whose result changed with the schema
 * (0A000, "cached plan must not change result type").
 */
export function isPreparedStateError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "26000" || code === "42P05" || code === "0A000";
}
