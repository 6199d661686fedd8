import type { Knex } from "knex";
import { Channel } from "../db/channels.js";
import { isConnectionError, translateDatabaseError } from "../db/pg-errors.js";
import type { ChangeContext, ChangeEntry, Committed } from "./change.js";

const MAX_GROUP = 128;
const ENTRY_CHUNK = 1000;

type Apply<T> = (ctx: ChangeContext) => Promise<T>;

interface Pending {
  kind: string;
  apply: Apply<unknown>;
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

/**
 * The single door for every write to the routing model. Each transaction first locks the
 * `routing_state` row, so writers from every instance take turns and versions are committed in
 * order without gaps. Changes waiting at the same moment share one transaction (group commit):
 * each runs in its own savepoint, takes its own version and gets its own answer, and a failing
 * one is rolled back alone.
 */
export class Committer {
  private readonly queue: Pending[] = [];
  private running = false;
  private listeners: Array<(version: number, entries: ChangeEntry[]) => void> = [];

  constructor(private readonly knex: Knex) {}

  submit<T>(kind: string, apply: Apply<T>): Promise<Committed<T>> {
    return new Promise<Committed<T>>((resolve, reject) => {
      this.queue.push({
        kind,
        apply: apply as Apply<unknown>,
        resolve: resolve as (value: Committed<unknown>) => void,
        reject,
      });
      if (!this.running) void this.drain();
    });
  }

  /** Called after each commit with the new head and the entries of the versions it added. */
  onCommit(listener: (version: number, entries: ChangeEntry[]) => void): void {
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
    let head = 0;
    const allEntries: ChangeEntry[] = [];
    try {
      await this.knex.transaction(async (tx) => {
        const state = await tx("routing_state").where({ id: 1 }).forUpdate().first("version");
        head = Number(state.version);
        const now = new Date();
        const changes: Array<{ version: number; kind: string; committed_at: Date }> = [];
        for (const item of group) {
          const entries: ChangeEntry[] = [];
          const ctx = (t: Knex.Transaction): ChangeContext => ({
            tx: t,
            version: head + 1,
            now,
            record: (entry) => entries.push(entry),
          });
          try {
            const value =
              group.length === 1
                ? await item.apply(ctx(tx))
                : await tx.transaction((sp) => item.apply(ctx(sp)));
            if (entries.length > 0) {
              head += 1;
              changes.push({ version: head, kind: item.kind, committed_at: now });
              allEntries.push(...entries);
            }
            outcomes.push({ ok: true, value, version: head, entries });
          } catch (error) {
            // A lone change rolls back with the whole transaction; so does a lost connection.
            if (group.length === 1 || isConnectionError(error)) throw error;
            outcomes.push({ ok: false, error, version: head, entries: [] });
          }
        }
        if (changes.length === 0) return;
        const versionOf = new Map<ChangeEntry, number>();
        for (const o of outcomes) for (const e of o.entries) versionOf.set(e, o.version);
        const rows = allEntries.map((e) => ({
          version: versionOf.get(e),
          worker_id: e.workerId,
          route_id: e.routeId,
          op: e.op,
          route: e.route === undefined ? null : JSON.stringify(e.route),
        }));
        const last = rows.splice(Math.max(0, rows.length - ENTRY_CHUNK));
        for (let i = 0; i < rows.length; i += ENTRY_CHUNK) {
          await tx("change_entries").insert(rows.slice(i, i + ENTRY_CHUNK));
        }
        // The log, the new head and the wake-up for other instances in one round trip.
        await tx.raw(
          "WITH c AS (?), e AS (?) UPDATE routing_state SET version = ? WHERE id = 1 RETURNING pg_notify(?, ?)",
          [
            tx("changes").insert(changes),
            tx("change_entries").insert(last),
            head,
            Channel.Routing,
            String(head),
          ],
        );
      });
    } catch (error) {
      const translated = translateDatabaseError(error);
      for (const item of group) item.reject(translated);
      return;
    }
    if (allEntries.length > 0) {
      for (const l of this.listeners) {
        // A listener's failure must not keep committed changes from being answered.
        try {
          l(head, allEntries);
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
}
