import type { Knex } from "knex";
import { findWorkersByIds } from "../workers/repository.js";

/** Ids asked about in one statement at most. */
const BATCH = 500;

interface Asked {
  id: string;
  resolve: (exists: boolean) => void;
  reject: (error: unknown) => void;
}

/**
 * Answers "does this worker exist?" for stream upgrades, which must refuse an unknown worker
 * with 404 before upgrading. Questions asked while a read is under way, or in the same turn of
 * the event loop, are answered together by the next read: a fleet reconnecting at once (a
 * restarted coordinator, a network blip) costs a few statements instead of one per worker.
 */
export class WorkerLookup {
  private waiting: Asked[] = [];
  private reading = false;

  constructor(private readonly knex: Knex) {}

  exists(id: string): Promise<boolean> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ id, resolve, reject });
      if (!this.reading && this.waiting.length === 1) setImmediate(() => void this.read());
    });
  }

  private async read(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      while (this.waiting.length > 0) {
        const asked = this.waiting.splice(0, BATCH);
        try {
          const rows = await findWorkersByIds(this.knex, [...new Set(asked.map((a) => a.id))]);
          const found = new Set(rows.map((r) => r.id));
          for (const a of asked) a.resolve(found.has(a.id));
        } catch (error) {
          for (const a of asked) a.reject(error);
        }
      }
    } finally {
      this.reading = false;
    }
  }
}
