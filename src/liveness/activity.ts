import type { Knex } from "knex";
import type { Logger } from "../logger.js";
import { isStorableTime } from "../shared/schema-parts.js";
import { recordActivity } from "./repository.js";

/** Activity is written at most this often: one statement for every route reported meanwhile. */
export const ACTIVITY_FLUSH_MS = 2000;
/**
 * How far ahead of this coordinator's clock a worker's clock may run. A time within it counts as
 * the report's arrival; a time beyond it is not a clock's drift but a wrong (or hostile) report,
 * and is dropped: kept, it would hide the route from idle culling.
 */
export const ACTIVITY_CLOCK_SKEW_MS = 30_000;
/** A batch the database refused is tried this many times in all, then given up. */
const FLUSH_ATTEMPTS = 3;

/** Why a reported entry was not kept. */
export type ActivityDrop = "bad_time" | "not_own";

interface Pending {
  routeId: string;
  workerId: string;
  at: Date;
  attempts: number;
}

/**
 * Keeps workers' traffic reports as routes' `last_activity_at`. Activity is not a routing change:
 * it takes no version, goes to no worker, and is coalesced so that a busy route costs at most one
 * write per flush.
 */
export class ActivityRecorder {
  /** Keyed by worker and route: one worker's report never replaces another's. */
  private pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly knex: Knex,
    private readonly logger: Logger,
  ) {}

  /**
   * Queues a worker's report of its own routes. Each entry stands alone: one whose time cannot be
   * read, cannot be stored, or lies beyond ACTIVITY_CLOCK_SKEW_MS ahead is dropped, and the
   * others are kept. (Times before the route existed are dropped as they are written.) Returns
   * how many entries were dropped.
   */
  report(workerId: string, routes: Record<string, string>): number {
    const received = Date.now();
    let dropped = 0;
    for (const [routeId, time] of Object.entries(routes)) {
      let at = new Date(time);
      if (
        Number.isNaN(at.getTime()) ||
        !isStorableTime(at) ||
        at.getTime() > received + ACTIVITY_CLOCK_SKEW_MS
      ) {
        dropped += 1;
        continue;
      }
      // Traffic cannot be newer than the report of it.
      if (at.getTime() > received) at = new Date(received);
      const key = `${workerId} ${routeId}`;
      const known = this.pending.get(key);
      if (!known || known.at < at) this.pending.set(key, { routeId, workerId, at, attempts: 0 });
    }
    this.scheduleFlush();
    return dropped;
  }

  private scheduleFlush(): void {
    if (this.stopped) return;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, ACTIVITY_FLUSH_MS);
  }

  async flush(): Promise<void> {
    const batch = this.pending;
    this.pending = new Map();
    if (batch.size === 0) return;
    try {
      await recordActivity(this.knex, [...batch.values()]);
    } catch (error) {
      // Kept for the next flush, but not forever: a batch the database keeps refusing must not
      // hold every later report back.
      let given = 0;
      for (const [key, entry] of batch) {
        if (entry.attempts + 1 >= FLUSH_ATTEMPTS) {
          given += 1;
          continue;
        }
        const newer = this.pending.get(key);
        if (!newer || newer.at < entry.at) {
          this.pending.set(key, { ...entry, attempts: entry.attempts + 1 });
        }
      }
      this.logger.warn("could not record activity", { error: String(error), given_up: given });
      if (this.pending.size > 0) this.scheduleFlush();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
