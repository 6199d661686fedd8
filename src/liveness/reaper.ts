import type { Knex } from "knex";
import type { DatabaseKind } from "../db/database.js";
import type { Logger } from "../logger.js";
import { relocateRoutes } from "../placement/relocate.js";
import { findRoutesOfWorker } from "../routes/repository.js";
import { RouteService } from "../routes/service.js";
import type { Committer } from "../versioning/committer.js";
import type { WorkerRow } from "../workers/model.js";
import { lockWorker } from "../workers/repository.js";
import { WorkerService } from "../workers/service.js";
import {
  countStranded,
  findExpiredRouteIds,
  findForgettable,
  findLostWithRoutes,
  findReaperDue,
  findVanishedWorkers,
  markLostIfVanished,
  type VanishedRule,
} from "./repository.js";
import { trimChangelog } from "./trim.js";

/** Work done per run at most, so that one run never holds the database for long. */
const BATCH = 100;
const EXPIRY_BATCH = 1000;
/** Any constant shared by every instance; only one instance's reaper acts at a time. */
const REAPER_LOCK_KEY = 0x61707078; // "appx"

export interface ReaperSettings {
  workerLostAfterS: number;
  workerForgetAfterS: number;
  heartbeatIntervalS: number;
  changelogRetention: number;
  /** When this coordinator began serving: no worker is counted lost from before it. */
  startedAt: Date;
}

export interface ReaperRun {
  /** False when another instance held the reaper lock. */
  acted: boolean;
  lost: string[];
  failedOver: number;
  stranded: number;
  forgotten: string[];
  expired: number;
  trimmedThrough: number | undefined;
}

/**
 * One reaper run: marks vanished workers lost, fails their routes over, forgets long-lost
 * workers, removes expired routes and trims the change log. Each routing change goes through the
 * committer like any other, so workers receive it as a diff.
 */
export class Reaper {
  private readonly routes: RouteService;
  private readonly workers: WorkerService;

  constructor(
    private readonly knex: Knex,
    private readonly kind: DatabaseKind,
    private readonly committer: Committer,
    private readonly settings: ReaperSettings,
    private readonly logger: Logger,
  ) {
    this.routes = new RouteService(knex, committer);
    this.workers = new WorkerService(knex, committer);
  }

  async run(now = new Date()): Promise<ReaperRun> {
    if (this.kind === "embedded") return this.runLocked(now);
    // A transaction-scoped advisory lock held on one pooled connection for the whole run.
    return this.knex.transaction(async (tx) => {
      const got = await tx.raw<{ rows: Array<{ locked: boolean }> }>(
        "SELECT pg_try_advisory_xact_lock(?) AS locked",
        [REAPER_LOCK_KEY],
      );
      if (!got.rows[0]?.locked) return idle();
      return this.runLocked(now);
    });
  }

  private async runLocked(now: Date): Promise<ReaperRun> {
    const s = this.settings;
    const result = idle();
    result.acted = true;

    const rule: VanishedRule = {
      lostAfterS: s.workerLostAfterS,
      connectedStaleAfterS: Math.max(s.workerLostAfterS, 3 * s.heartbeatIntervalS),
      notBefore: s.startedAt,
    };
    // Most runs find nothing to do: one read says so, and the run ends there.
    const due = await findReaperDue(
      this.knex,
      now,
      rule,
      s.workerForgetAfterS,
      s.changelogRetention,
    );
    if (!Object.values(due).some(Boolean)) return result;

    for (const w of due.vanished ? await findVanishedWorkers(this.knex, now, rule, BATCH) : []) {
      // Decided again on the row as it is when written: it may have come back since the query
      // (registered again, or opened a stream on any instance), or come back as this runs.
      const marked = await this.committer.submit("workers.lost", (ctx) =>
        markLostIfVanished(ctx.tx, w.id, now, rule, ctx.now),
      );
      if (marked.result) result.lost.push(w.id);
    }
    if (result.lost.length > 0) this.logger.warn("workers lost", { workers: result.lost });

    // Also the workers this run has just marked lost.
    const failingOver =
      due.lostWithRoutes || result.lost.length > 0
        ? await findLostWithRoutes(this.knex, BATCH)
        : [];
    for (const w of failingOver) {
      const moved = await this.committer.submit("workers.failover", async (ctx) => {
        // Locked: a stream starting meanwhile makes it alive after its routes moved, not before.
        const current = await lockWorker(ctx.tx, w.id);
        if (!current || current.status !== "lost") return 0;
        const plan = await relocateRoutes(ctx, current, await findRoutesOfWorker(ctx.tx, w.id));
        return plan.moved.length;
      });
      result.failedOver += moved.result;
    }

    const forgettable = due.forgettable
      ? await findForgettable(this.knex, now, s.workerForgetAfterS, BATCH)
      : [];
    for (const w of forgettable) {
      // As DELETE /workers/{id}?force=true (routes move where they can, the rest go), only if
      // it is still the lost worker the query found: one that came back since is not forgotten.
      const forgotten = await this.workers.remove(
        w.id,
        true,
        (current) =>
          current.status === "lost" &&
          samePresence(current, w) &&
          time(current.lost_at) === time(w.lost_at),
      );
      if (forgotten.result) result.forgotten.push(w.id);
    }
    if (result.forgotten.length > 0)
      this.logger.info("workers forgotten", { workers: result.forgotten });

    const expired = due.expired ? await findExpiredRouteIds(this.knex, now, EXPIRY_BATCH) : [];
    if (expired.length > 0) {
      const removed = await this.routes.removeExpired(expired, now);
      result.expired = removed.result;
    }

    if (due.trim) result.trimmedThrough = await trimChangelog(this.committer, s.changelogRetention);
    result.stranded = await countStranded(this.knex);
    return result;
  }
}

const time = (d: Date | null): number | null => (d === null ? null : new Date(d).getTime());

/** True when nothing about the worker's streams or registration changed between two reads. */
function samePresence(a: WorkerRow, b: WorkerRow): boolean {
  return (
    time(a.liveness_since) === time(b.liveness_since) &&
    time(a.last_seen_at) === time(b.last_seen_at) &&
    a.connected_instance === b.connected_instance
  );
}

function idle(): ReaperRun {
  return {
    acted: false,
    lost: [],
    failedOver: 0,
    stranded: 0,
    forgotten: [],
    expired: 0,
    trimmedThrough: undefined,
  };
}
