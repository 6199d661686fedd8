import type { Knex } from "knex";
import type { Logger } from "../logger.js";
import { recordActivity } from "./repository.js";

/** Activity is written at most this often: one statement for every route reported meanwhile. */
export const ACTIVITY_FLUSH_MS = 2000;

/**
 * Keeps workers' traffic reports as routes' `last_activity_at`. Activity is not a routing change:
 * it takes no version, goes to no worker, and is coalesced so that a busy route costs at most one
 * write per flush.
 */
export class ActivityRecorder {
  private pending = new Map<string, { workerId: string; at: Date }>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly knex: Knex,
    private readonly logger: Logger,
  ) {}

  /**
   * A time after the report's arrival is taken as its arrival: traffic cannot be newer than the
   * report of it, and a worker whose clock runs ahead must not hide a route from idle culling.
   */
  report(workerId: string, routes: Record<string, string>): void {
    const received = new Date();
    for (const [routeId, time] of Object.entries(routes)) {
      let at = new Date(time);
      if (Number.isNaN(at.getTime())) continue;
      if (at > received) at = received;
      const known = this.pending.get(routeId);
      if (!known || known.at < at) this.pending.set(routeId, { workerId, at });
    }
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
      await recordActivity(
        this.knex,
        [...batch].map(([routeId, v]) => ({ routeId, workerId: v.workerId, at: v.at })),
      );
    } catch (error) {
      for (const [id, v] of batch) {
        const newer = this.pending.get(id);
        if (!newer || newer.at < v.at) this.pending.set(id, v);
      }
      this.logger.warn("could not record activity", { error: String(error) });
    }
  }

  async stop(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
