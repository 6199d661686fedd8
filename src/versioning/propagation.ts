import { EventEmitter } from "node:events";
import type { Knex } from "knex";

const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 50;

/**
 * Answers "has every worker whose table this change touched acknowledged its version?". The
 * database's `applied_version` is the truth, whichever instance holds a worker's stream; a local
 * acknowledgement (from this instance's hub) wakes waiters at once instead of at the next poll.
 */
export class PropagationWatch {
  private readonly local = new EventEmitter();
  /** The highest version each worker acknowledged on a stream of this instance. */
  private readonly ackedHere = new Map<string, number>();

  constructor(private readonly knex: Knex) {
    this.local.setMaxListeners(0);
  }

  /** Tells waiters on this instance that a worker acknowledged `version`. */
  acknowledged(workerId: string, version: number): void {
    if ((this.ackedHere.get(workerId) ?? -1) < version) this.ackedHere.set(workerId, version);
    this.local.emit("ack", workerId, version);
  }

  /** A removed worker's acknowledgements are no longer kept. */
  forget(workerId: string): void {
    this.ackedHere.delete(workerId);
  }

  /**
   * Resolves true once all `workerIds` applied `version` (or are gone), false at the deadline.
   * Workers streaming to this instance usually answer within milliseconds: the database is asked
   * only after the first FIRST_POLL_MS without their acknowledgement, then at growing intervals.
   */
  async waitApplied(version: number, workerIds: string[], timeoutMs: number): Promise<boolean> {
    const pending = new Set(workerIds.filter((id) => (this.ackedHere.get(id) ?? -1) < version));
    if (pending.size === 0) return true;
    const deadline = Date.now() + timeoutMs;
    let pollMs = FIRST_POLL_MS;
    const onAck = (workerId: string, acked: number) => {
      if (acked >= version) pending.delete(workerId);
    };
    this.local.on("ack", onAck);
    try {
      await this.nextAck(Math.min(pollMs, Math.max(0, deadline - Date.now())), pending);
      for (;;) {
        if (pending.size === 0) return true;
        const rows = (await this.knex("workers")
          .whereIn("id", [...pending])
          .select("id", "applied_version")) as Array<{ id: string; applied_version: number }>;
        const present = new Map(rows.map((r) => [r.id, Number(r.applied_version)]));
        for (const id of [...pending]) {
          const applied = present.get(id);
          if (applied === undefined || applied >= version) pending.delete(id);
        }
        if (pending.size === 0) return true;
        const left = deadline - Date.now();
        if (left <= 0) return false;
        await this.nextAck(Math.min(pollMs, left), pending);
        pollMs = Math.min(pollMs * 2, MAX_POLL_MS);
      }
    } finally {
      this.local.off("ack", onAck);
    }
  }

  private nextAck(ms: number, pending: Set<string>): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.local.off("ack", check);
        resolve();
      };
      const check = () => {
        if (pending.size === 0) done();
      };
      const timer = setTimeout(done, ms);
      this.local.on("ack", check);
    });
  }
}
