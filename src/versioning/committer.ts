import type { Knex } from "knex";
import { Channel } from "../db/channels.js";
import { isConnectionError, translateDatabaseError } from "../db/pg-errors.js";
import type {
  ChangeContext,
  ChangeEntry,
  Committed,
  Mergeable,
  MergedContext,
  MergedResult,
} from "./change.js";

const MAX_GROUP = 128;

type Apply<T> = (ctx: ChangeContext) => Promise<T>;

/** Told of each commit: its versions `first`…`head` and every entry, with its version. */
export type CommitListener = (
  first: number,
  head: number,
  entries: ReadonlyArray<{ version: number; entry: ChangeEntry }>,
) => void;

interface Pending {
  kind: string;
  apply: Apply<unknown>;
  merge: Mergeable<unknown, unknown> | undefined;
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
  now: Date;
  changes: Array<{ version: number; kind: string; committed_at: Date }>;
  entries: Array<{ version: number; entry: ChangeEntry }>;
}

/**
 * The single door for every write to the routing model. Each transaction first locks the
 * `routing_state` row, so writers from every instance take turns and versions are committed in
 * order without gaps. Changes waiting at the same moment share one transaction (group commit):
 * each runs in its own savepoint, takes its own version and gets its own answer, and a failing
 * one is rolled back alone. Changes that can be merged (route creations) run as one pass with a
 * handful of statements for the whole run, still one version and one answer each.
 */
export class Committer {
  private readonly queue: Pending[] = [];
  private running = false;
  private listeners: CommitListener[] = [];

  constructor(private readonly knex: Knex) {}

  submit<T, I = never>(
    kind: string,
    apply: Apply<T>,
    merge?: Mergeable<I, T>,
  ): Promise<Committed<T>> {
    return new Promise<Committed<T>>((resolve, reject) => {
      this.queue.push({
        kind,
        apply: apply as Apply<unknown>,
        merge: merge as Mergeable<unknown, unknown> | undefined,
        resolve: resolve as (value: Committed<unknown>) => void,
        reject,
      });
      if (!this.running) void this.drain();
    });
  }

  /** Called after each commit with the new head and the entries of the versions it added. */
  onCommit(listener: CommitListener): void {
    this.listeners.push(listener);
  }

  private async drain(): Promise<void> {
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue.splice(0, MAX_GROUP);
        await this.runGroup(group);
      }
    } finally {
      this.running = false;
    }
  }

  private async runGroup(group: Pending[]): Promise<void> {
    const outcomes: Outcome[] = [];
    const log: GroupLog = { head: 0, now: new Date(), changes: [], entries: [] };
    try {
      await this.knex.transaction(async (tx) => {
        const state = await tx("routing_state").where({ id: 1 }).forUpdate().first("version");
        log.head = Number(state.version);
        // Stamped once the lock is held, so that commit times follow the order of versions.
        log.now = new Date();
        for (let i = 0; i < group.length;) {
          const run = mergeableRun(group, i);
          if (run.length > 1 && (await this.runMerged(tx, run, log, outcomes))) {
            i += run.length;
            continue;
          }
          for (const item of run) {
            outcomes.push(await this.runOne(tx, item, log, group.length === 1));
          }
          i += run.length;
        }
        if (log.changes.length === 0) return;
        const rows = log.entries.map(({ version, entry: e }) => ({
          version,
          worker_id: e.workerId,
          route_id: e.routeId,
          op: e.op,
          route: e.route ?? null,
        }));
        // The log, the new head and the wake-up for other instances in one round trip; rows
        // travel as one JSON document each, not as one parameter per column and row.
        await tx.raw(
          `WITH c AS (INSERT INTO changes SELECT * FROM jsonb_populate_recordset(NULL::changes, ?::jsonb)),
           e AS (INSERT INTO change_entries SELECT * FROM jsonb_populate_recordset(NULL::change_entries, ?::jsonb))
           UPDATE routing_state SET version = ? WHERE id = 1 RETURNING pg_notify(?, ?)`,
          [
            JSON.stringify(log.changes),
            JSON.stringify(rows),
            log.head,
            Channel.Routing,
            String(log.head),
          ],
        );
      });
    } catch (error) {
      const translated = translateDatabaseError(error);
      for (const item of group) item.reject(translated);
      return;
    }
    if (log.changes.length > 0) {
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
    group.forEach((item, i) => {
      const o = outcomes[i]!;
      if (!o.ok) return item.reject(translateDatabaseError(o.error));
      item.resolve({
        result: o.value,
        version: o.version,
        changed: o.entries.length > 0,
        workerIds: [...new Set(o.entries.map((e) => e.workerId))],
      });
    });
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
      const value = alone
        ? await item.apply(ctx(tx))
        : await tx.transaction((sp) => item.apply(ctx(sp)));
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

  /**
   * A run of mergeable changes in one savepoint. False when the pass itself failed (nothing of
   * it is kept); the caller then runs the changes one by one.
   */
  private async runMerged(
    tx: Knex.Transaction,
    run: Pending[],
    log: GroupLog,
    outcomes: Outcome[],
  ): Promise<boolean> {
    const merge = run[0]!.merge!;
    let head = log.head;
    const recorded = new Map<number, ChangeEntry[]>();
    let results: Array<MergedResult<unknown>>;
    try {
      results = await tx.transaction(async (sp) => {
        const ctx: MergedContext = {
          tx: sp,
          now: log.now,
          takeVersion: () => (head += 1),
          record: (version, entry) => {
            const list = recorded.get(version);
            if (list) list.push(entry);
            else recorded.set(version, [entry]);
          },
        };
        return merge.applyMany(
          ctx,
          run.map((item) => item.merge!.input),
        );
      });
    } catch (error) {
      if (isConnectionError(error)) throw error;
      return false;
    }
    results.forEach((result, i) => {
      if (!result.ok) {
        outcomes.push({ ok: false, error: result.error, version: log.head, entries: [] });
        return;
      }
      const entries = result.version === undefined ? [] : (recorded.get(result.version) ?? []);
      if (entries.length > 0) {
        log.head = result.version!;
        log.changes.push({ version: log.head, kind: run[i]!.kind, committed_at: log.now });
        for (const entry of entries) log.entries.push({ version: log.head, entry });
      }
      outcomes.push({ ok: true, value: result.value, version: log.head, entries });
    });
    return true;
  }
}

/** The items from `start` that can run merged with it: consecutive, of one merge key. */
function mergeableRun(group: Pending[], start: number): Pending[] {
  const first = group[start]!;
  if (!first.merge) return [first];
  let end = start + 1;
  while (end < group.length && group[end]!.merge?.key === first.merge.key) end += 1;
  return group.slice(start, end);
}
