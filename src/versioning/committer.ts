import type { Knex } from "knex";
import { Channel, routingPayload } from "../db/channels.js";
import { isAppError } from "../errors.js";
import { isConnectionError, translateDatabaseError } from "../db/pg-errors.js";
import { Prepared, runCall, type Call, type Statement } from "../db/prepared.js";
import { json, ScriptSession, type Row } from "../db/script.js";
import { ChangeTiming, noStages, type StageClock } from "../ops/change-stages.js";
import type {
  ChangeContext,
  ChangeEntry,
  Committed,
  PlanContext,
  RunResult,
  Scripted,
} from "./change.js";

const MAX_GROUP = 128;

type Apply<T> = (ctx: ChangeContext) => Promise<T>;

/** Told of each commit: its versions `first`…`head` and every entry, with its version. */
export type CommitListener = (
  first: number,
  head: number,
  entries: ReadonlyArray<{ version: number; entry: ChangeEntry }>,
) => void;

/**
 * Told of each write transaction that ended without error: how many requests it answered and how
 * long it took from asking for the routing lock to its commit (the wait for the lock included).
 */
export type TransactionListener = (requests: number, seconds: number) => void;

interface Pending {
  kind: string;
  apply: Apply<unknown> | undefined;
  scripted: Scripted<unknown, unknown> | undefined;
  /** When it was handed to the committer (performance.now()). */
  submittedAt: number;
  resolve(value: Committed<unknown>): void;
  reject(error: unknown): void;
}

interface Outcome {
  ok: boolean;
  value?: unknown;
  error?: unknown;
  version: number;
  entries: ChangeEntry[];
}

/** What a group's transaction accumulates: the head, the log rows and each change's outcome. */
interface GroupLog {
  head: number;
  /** When the routing lock was held, the group's reads with it (performance.now()). */
  lockedAt: number;
  now: Date;
  changes: Array<{ version: number; kind: string; committed_at: Date }>;
  entries: Array<{ version: number; entry: ChangeEntry }>;
}

/**
 * The single door for every write to the routing model. Each transaction first locks the
 * `routing_state` row, so writers from every instance take turns and versions are committed in
 * order without gaps. Changes waiting at the same moment share one transaction (group commit),
 * each with its own version and its own answer:
 *
 * - scripted changes (route creations and patches) run by kind as one pass each, in two or
 *   three round trips for the whole group: the lock with every read, the bookings only the
 *   database can hand out (when a large batch needs them), then every write with the log and the
 *   commit. Should the pass fail, each change is run again alone, so that one bad change cannot
 *   fail the others;
 * - any other change runs in a savepoint of its own, so a failing one is rolled back alone.
 *
 * The changes of a group were all waiting unanswered at once, so any order among them is one
 * their callers could have seen; a group runs its scripted changes first.
 */
export class Committer {
  private readonly queue: Pending[] = [];
  private running = false;
  private listeners: CommitListener[] = [];
  private transactionListeners: TransactionListener[] = [];

  /**
   * `origin` names this instance in each commit's NOTIFY ("head origin"), so that its own hub,
   * which hears of the commit from `onCommit` already, can let the notification pass.
   */
  constructor(
    private readonly knex: Knex,
    private readonly origin = "",
    /** Takes the queue, lock and commit stages of every change (see ops/change-stages.ts). */
    private readonly stages: StageClock = noStages,
  ) {}

  submit<T>(kind: string, apply: Apply<T>): Promise<Committed<T>> {
    return this.enqueue(kind, apply as Apply<unknown>, undefined);
  }

  /** A change that runs scripted with the others of its `key` waiting at the same moment. */
  submitScripted<I, T>(kind: string, scripted: Scripted<I, T>): Promise<Committed<T>> {
    return this.enqueue(kind, undefined, scripted as Scripted<unknown, unknown>);
  }

  private enqueue<T>(
    kind: string,
    apply: Apply<unknown> | undefined,
    scripted: Scripted<unknown, unknown> | undefined,
  ): Promise<Committed<T>> {
    return new Promise<Committed<T>>((resolve, reject) => {
      this.queue.push({
        kind,
        apply,
        scripted,
        submittedAt: performance.now(),
        resolve: resolve as (value: Committed<unknown>) => void,
        reject,
      });
      if (this.running) return;
      this.running = true;
      // Changes submitted in the same tick start together.
      queueMicrotask(() => void this.drain());
    });
  }

  /** Called after each commit with the new head and the entries of the versions it added. */
  onCommit(listener: CommitListener): void {
    this.listeners.push(listener);
  }

  /** Called after each write transaction that ended without error (see TransactionListener). */
  onTransaction(listener: TransactionListener): void {
    this.transactionListeners.push(listener);
  }

  private ended(requests: number, startedMs: number): void {
    const seconds = (performance.now() - startedMs) / 1000;
    for (const l of this.transactionListeners) {
      // Metrics must not keep committed changes from being answered.
      try {
        l(requests, seconds);
      } catch {
        // nothing to undo
      }
    }
  }

  private async drain(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        const { scripted, deferred } = scriptedOf(group);
        this.queue.unshift(...deferred);
        if (scripted.length > 0) await this.runScripted(scripted);
        const rest = group.filter((item) => item.apply !== undefined);
        if (rest.length > 0) await this.runGroup(rest);
      }
    } finally {
      this.running = false;
    }
  }

  private async runScripted(items: Pending[]): Promise<void> {
    const outcomes = new Map<Pending, Outcome>();
    const log: GroupLog = { head: 0, lockedAt: 0, now: new Date(), changes: [], entries: [] };
    let session: ScriptSession | undefined;
    const started = performance.now();
    try {
      session = await ScriptSession.open(this.knex);
      await this.runScript(session, byKey(items), log, outcomes);
    } catch (error) {
      if (session) await session.close(await rollback(session, error)).catch(() => undefined);
      if (items.length > 1 && !isConnectionError(error)) {
        // Run alone, each change fails or succeeds on its own.
        for (const item of items) await this.runScripted([item]);
        return;
      }
      const translated = translateDatabaseError(error);
      for (const item of items) item.reject(translated);
      return;
    }
    const timings = this.timed(items, started, log.lockedAt);
    this.ended(items.length, started);
    // Committed: handing the connection back cannot undo that, nor must its failure.
    await session.close().catch(() => undefined);
    this.announce(log);
    items.forEach((item, i) => settle(item, outcomes.get(item)!, timings[i]!));
  }

  private async runScript(
    session: ScriptSession,
    groups: Pending[][],
    log: GroupLog,
    outcomes: Map<Pending, Outcome>,
  ): Promise<void> {
    const runs = groups.map((items) => ({
      items,
      run: items[0]!.scripted!.start(items.map((item) => item.scripted!.input)),
    }));
    const reads = runs.map(({ run }) => run.reads());
    const [, locked, ...readRows] = await session.run(["BEGIN", LOCK.with(), ...reads.flat()]);
    log.lockedAt = performance.now();
    log.head = Number(locked![0]!.version);
    log.now = new Date();
    const recorded = new Map<number, ChangeEntry[]>();
    const ctx: PlanContext = {
      now: log.now,
      takeVersion: () => (log.head += 1),
      record: (version, entry) => {
        const list = recorded.get(version);
        if (list) list.push(entry);
        else recorded.set(version, [entry]);
      },
    };
    const readsOf = slicer(readRows, reads);
    for (const { run } of runs) {
      let rows = readsOf();
      for (let more = run.more?.(rows) ?? []; more.length > 0; more = run.more!(rows)) {
        rows = [...rows, ...(await session.run(more))];
      }
      run.plan(rows, ctx);
    }
    const writes = runs.flatMap(({ run }) => run.writes());
    for (const { items, run } of runs) {
      run.results().forEach((result, i) => {
        outcomes.set(items[i]!, outcomeOf(items[i]!.kind, result, recorded, log));
      });
    }
    log.changes.sort((a, b) => a.version - b.version);
    log.entries.sort((a, b) => a.version - b.version);
    if (log.changes.length === 0) {
      await session.send(["ROLLBACK"]);
      return;
    }
    await session.send([...writes, logStatement(log, this.origin), "COMMIT"]);
  }

  private async runGroup(group: Pending[]): Promise<void> {
    const outcomes: Outcome[] = [];
    const log: GroupLog = { head: 0, lockedAt: 0, now: new Date(), changes: [], entries: [] };
    const started = performance.now();
    try {
      await this.knex.transaction(async (tx) => {
        const locked = await runCall<{ rows: Array<{ version: number }> }>(tx, LOCK.with());
        log.lockedAt = performance.now();
        log.head = Number(locked.rows[0]!.version);
        // Stamped once the lock is held, so that commit times follow the order of versions.
        log.now = new Date();
        for (const item of group) {
          outcomes.push(await this.runOne(tx, item, log, group.length === 1));
        }
        if (log.changes.length === 0) return;
        await runCall(tx, logStatement(log, this.origin));
      });
    } catch (error) {
      const translated = translateDatabaseError(error);
      for (const item of group) item.reject(translated);
      return;
    }
    const timings = this.timed(group, started, log.lockedAt);
    this.ended(group.length, started);
    this.announce(log);
    group.forEach((item, i) => settle(item, outcomes[i]!, timings[i]!));
  }

  /** Observes the queue, lock and commit stages of a committed group's changes; their timings. */
  private timed(items: Pending[], started: number, lockedAt: number): ChangeTiming[] {
    const committedAt = performance.now();
    const lock = (lockedAt - started) / 1000;
    const commit = (committedAt - lockedAt) / 1000;
    return items.map((item) => {
      this.stages.observe("queue", (started - item.submittedAt) / 1000);
      this.stages.observe("lock", lock);
      this.stages.observe("commit", commit);
      return new ChangeTiming(this.stages, item.submittedAt, committedAt);
    });
  }

  private announce(log: GroupLog): void {
    if (log.changes.length === 0) return;
    const first = log.changes[0]!.version;
    for (const l of this.listeners) {
      // A listener's failure must not keep committed changes from being answered.
      try {
        l(first, log.head, log.entries);
      } catch {
        // The hub also re-reads the log's head on a timer; nothing is lost.
      }
    }
  }

  /** One change, in a savepoint of its own unless it is alone in the transaction. */
  private async runOne(
    tx: Knex.Transaction,
    item: Pending,
    log: GroupLog,
    alone: boolean,
  ): Promise<Outcome> {
    const entries: ChangeEntry[] = [];
    const ctx = (t: Knex.Transaction): ChangeContext => ({
      tx: t,
      version: log.head + 1,
      now: log.now,
      record: (entry) => entries.push(entry),
    });
    try {
      const apply = item.apply!;
      const value = alone ? await apply(ctx(tx)) : await tx.transaction((sp) => apply(ctx(sp)));
      if (entries.length > 0) {
        log.head += 1;
        log.changes.push({ version: log.head, kind: item.kind, committed_at: log.now });
        for (const entry of entries) log.entries.push({ version: log.head, entry });
      }
      return { ok: true, value, version: log.head, entries };
    } catch (error) {
      // A lone change rolls back with the whole transaction; so does a lost connection.
      if (alone || isConnectionError(error)) throw error;
      return { ok: false, error, version: log.head, entries: [] };
    }
  }
}

/** Takes the turn of writers: the routing state's row, locked until commit, and its head. */
const LOCK = new Prepared(
  "appproxy_lock_routing_state",
  [],
  "SELECT version FROM routing_state WHERE id = 1 FOR UPDATE",
);

const LOG = new Prepared(
  "appproxy_log_changes",
  ["jsonb", "jsonb", "bigint", "text", "text"],
  `WITH c AS (INSERT INTO changes SELECT * FROM jsonb_populate_recordset(NULL::changes, $1)),
    e AS (INSERT INTO change_entries SELECT * FROM jsonb_populate_recordset(NULL::change_entries, $2))
    UPDATE routing_state SET version = $3 WHERE id = 1 RETURNING pg_notify($4, $5)`,
);

/**
 * The log, the new head and the wake-up for other instances in one statement; rows travel as
 * one JSON document each, not as one parameter per column and row.
 */
function logStatement(log: GroupLog, origin: string): Call {
  const rows = log.entries.map(({ version, entry: e }) => ({
    version,
    worker_id: e.workerId,
    route_id: e.routeId,
    op: e.op,
    route: e.route ?? null,
  }));
  return LOG.with(
    json(log.changes),
    json(rows),
    log.head,
    Channel.Routing,
    routingPayload(log.head, origin),
  );
}

function outcomeOf(
  kind: string,
  result: RunResult<unknown>,
  recorded: Map<number, ChangeEntry[]>,
  log: GroupLog,
): Outcome {
  if (!result.ok) return { ok: false, error: result.error, version: log.head, entries: [] };
  const entries = result.version === undefined ? [] : (recorded.get(result.version) ?? []);
  if (entries.length === 0) return { ok: true, value: result.value, version: log.head, entries };
  const version = result.version!;
  log.changes.push({ version, kind, committed_at: log.now });
  for (const entry of entries) log.entries.push({ version, entry });
  return { ok: true, value: result.value, version, entries };
}

function settle(item: Pending, o: Outcome, timing: ChangeTiming): void {
  if (!o.ok) {
    const error = translateDatabaseError(o.error);
    // Refused under the lock: the version it saw is exact, for the answer's X-Routing-Version.
    if (isAppError(error)) error.routingVersion ??= o.version;
    return item.reject(error);
  }
  item.resolve({
    result: o.value,
    version: o.version,
    changed: o.entries.length > 0,
    workerIds: [...new Set(o.entries.map((e) => e.workerId))],
    timing,
  });
}

/** Ends a failed script's transaction; the error to close the connection with, if it broke. */
async function rollback(session: ScriptSession, error: unknown): Promise<unknown> {
  if (isConnectionError(error)) return error;
  try {
    await session.send(["ROLLBACK"]);
    return undefined;
  } catch (rollbackError) {
    return rollbackError;
  }
}

/** Hands out consecutive slices of `rows`, one per list of statements, in order. */
function slicer(rows: Row[][], lists: Statement[][]): () => Row[][] {
  let at = 0;
  let next = 0;
  return () => {
    const n = lists[next++]!.length;
    at += n;
    return rows.slice(at - n, at);
  };
}

/** Scripted changes by key, in the order each key first came. */
function byKey(items: Pending[]): Pending[][] {
  const groups = new Map<string, Pending[]>();
  for (const item of items) {
    const key = item.scripted!.key;
    const list = groups.get(key);
    if (list) list.push(item);
    else groups.set(key, [item]);
  }
  return [...groups.values()];
}

/**
 * The group's scripted changes, and those that must wait for the next group: a change that needs
 * a route another change of this group creates.
 */
function scriptedOf(group: Pending[]): { scripted: Pending[]; deferred: Pending[] } {
  const created = new Map<string, Pending>();
  for (const item of group) {
    for (const id of item.scripted?.creates ?? []) if (!created.has(id)) created.set(id, item);
  }
  const scripted: Pending[] = [];
  const deferred: Pending[] = [];
  for (const item of group) {
    if (!item.scripted) continue;
    const waits = (item.scripted.needs ?? []).some((id) => {
      const creator = created.get(id);
      return creator !== undefined && creator !== item;
    });
    (waits ? deferred : scripted).push(item);
  }
  // Never all deferred: only creations are needed, and they need nothing themselves.
  if (scripted.length === 0) return { scripted: deferred, deferred: [] };
  return { scripted, deferred };
}
