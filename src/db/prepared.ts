import { literal } from "./script.js";

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

  /** As one statement with its values written in, for any connection (knex's queries). */
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

/** Forgets that `statements` (else every statement) were prepared on `connection`. */
export function forgetPrepared(connection: object, statements?: readonly Prepared[]): void {
  if (!statements) return void preparedOn.delete(connection);
  const known = preparedOn.get(connection);
  for (const s of statements) known?.delete(s.name);
}

export const statementText = (s: Statement): string => (typeof s === "string" ? s : s.execute());
