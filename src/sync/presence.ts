import type { Knex } from "knex";
import { notifyStreamTaken } from "../db/channels.js";
import type { Logger } from "../logger.js";
import { storable } from "../shared/text.js";

/** Acknowledgements someone may be waiting for (wait=applied on another instance). */
const ACK_FLUSH_MS = 5;
/**
 * Acknowledgements of empty diffs, which only /status, GET /workers and metrics read: a fleet's
 * trickle of them is written a few hundred rows per statement, twice a second.
 */
const LAZY_ACK_FLUSH_MS = 500;
/** What was skipped because a routing commit held the worker's row is written again this soon. */
const LOCKED_RETRY_MS = 20;

/**
 * What the database knows of streams: which instance holds a worker's stream, when it was last
 * seen, and what it applied. Acknowledgements and sightings are written in batches (one statement
 * for many workers), never one write per frame or ping.
 *
 * A batch skips the worker rows that a routing commit holds locked (FOR NO KEY UPDATE SKIP LOCKED)
 * instead of waiting for them: a statement that locks several rows one by one while a commit
 * locks them in another order deadlocks, and PostgreSQL may then abort the commit, failing a
 * routing request. Skipped acknowledgements and sightings are written again shortly after.
 */
export class PresenceWriter {
  private readonly applied = new Map<string, number>();
  private readonly seen = new Set<string>();
  /** The newest nack of each worker whose earlier nack is still being written. */
  private readonly nacks = new Map<string, Nack>();
  private readonly nackWriting = new Set<string>();
  private ackTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(
    private readonly knex: Knex,
    private readonly instanceId: string,
    private readonly logger: Logger,
  ) {}

  /**
   * The worker's stream numbered `streamSeq` is now on this instance; it is alive (unless
   * draining). Unless a newer stream's start or end was recorded already: then this one is over,
   * whatever its socket says, and writing it would undo the newer one.
   */
  async connected(workerId: string, streamSeq: number, now: Date): Promise<void> {
    await notifyStreamTaken(this.knex, workerId, this.instanceId, streamSeq);
    await this.knex("workers")
      .where({ id: workerId })
      .andWhere("stream_seq", "<", streamSeq)
      .update({
        connected_instance: this.instanceId,
        stream_seq: streamSeq,
        last_seen_at: now,
        lost_at: null,
        status: this.knex.raw("CASE WHEN status = 'draining' THEN 'draining' ELSE 'alive' END"),
      });
  }

  /**
   * The stream numbered `streamSeq` ended here; the liveness clock starts now. Unless a newer
   * stream's start was recorded already (on any instance). An older stream still recorded as
   * connected ended before this one began, so its record goes too.
   */
  async disconnected(workerId: string, streamSeq: number, now: Date): Promise<void> {
    this.seen.delete(workerId);
    await this.knex("workers")
      .where({ id: workerId })
      .andWhere("stream_seq", "<=", streamSeq)
      .update({
        connected_instance: null,
        stream_seq: streamSeq,
        last_seen_at: now,
        liveness_since: now,
      });
  }

  /**
   * Records the worker's last nack. While one is being written, later ones wait and only the
   * newest is written after it: a worker sending nacks in a loop costs one write at a time. Text
   * PostgreSQL cannot store (NUL, unpaired surrogates) is replaced, so that no nack is refused.
   */
  async nacked(workerId: string, nack: Nack): Promise<void> {
    this.nacks.set(workerId, { ...nack, error: storable(nack.error) });
    if (this.nackWriting.has(workerId)) return;
    this.nackWriting.add(workerId);
    try {
      for (let next = this.nacks.get(workerId); next; next = this.nacks.get(workerId)) {
        this.nacks.delete(workerId);
        try {
          await this.knex("workers")
            .where({ id: workerId })
            .update({ last_nack: JSON.stringify(next) });
        } catch (error) {
          // The next one, if any, is still written.
          this.logger.warn("could not record a nack", {
            worker_id: workerId,
            error: String(error),
          });
        }
      }
    } finally {
      this.nackWriting.delete(workerId);
    }
  }

  /**
   * Records an acknowledged version together with others: within milliseconds when `urgent` (it
   * covers a change to the worker's table, which a request may wait for), else within
   * LAZY_ACK_FLUSH_MS, so that a fleet acknowledging empty diffs does not rewrite every worker's
   * row several times a second.
   */
  acknowledged(workerId: string, version: number, urgent = true): void {
    if ((this.applied.get(workerId) ?? -1) < version) this.applied.set(workerId, version);
    this.scheduleFlush(urgent ? ACK_FLUSH_MS : LAZY_ACK_FLUSH_MS);
  }

  private flushDue = Infinity;

  private scheduleFlush(delayMs: number): void {
    if (this.stopped) return;
    const due = Date.now() + delayMs;
    if (this.ackTimer && due >= this.flushDue) return;
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.flushDue = due;
    this.ackTimer = setTimeout(() => {
      this.ackTimer = undefined;
      this.flushDue = Infinity;
      void this.flush();
    }, delayMs);
  }

  sighted(workerId: string): void {
    this.seen.add(workerId);
  }

  /** Writes pending acknowledgements and sightings; runs one flush at a time. */
  flush(): Promise<void> {
    this.flushing = this.flushing.then(() => this.writePending());
    return this.flushing;
  }

  private async writePending(): Promise<void> {
    const applied = [...this.applied];
    this.applied.clear();
    const seen = [...this.seen];
    this.seen.clear();
    try {
      for (const chunk of chunks(applied)) await this.writeApplied(chunk);
      for (const chunk of chunks(seen)) await this.writeSeen(chunk);
    } catch (error) {
      // Keep what was not written for the next flush; a database blip must not lose an ack.
      for (const [id, v] of applied) {
        if ((this.applied.get(id) ?? -1) < v) this.applied.set(id, v);
      }
      for (const id of seen) this.seen.add(id);
      this.logger.warn("could not record stream presence", { error: String(error) });
    }
  }

  /**
   * One statement's worth of acknowledgements. Each statement holds its rows only briefly: a
   * routing commit that counts routes on one of those workers waits for it.
   */
  private async writeApplied(applied: Array<[string, number]>): Promise<void> {
    const values = applied.map(() => "(?::uuid, ?::bigint)").join(", ");
    // Answers the acknowledgements skipped because their row was locked (and that still exist).
    const skipped = await this.knex.raw<{ rows: Array<{ id: string }> }>(
      `WITH v(id, version) AS (VALUES ${values}),
       free AS (SELECT w.id FROM workers w JOIN v ON w.id = v.id
                FOR NO KEY UPDATE OF w SKIP LOCKED),
       done AS (UPDATE workers SET applied_version = GREATEST(workers.applied_version, v.version)
                FROM v WHERE workers.id = v.id AND workers.id IN (SELECT id FROM free)
                RETURNING workers.id)
       SELECT v.id FROM v WHERE v.id NOT IN (SELECT id FROM done)
         AND EXISTS (SELECT 1 FROM workers w WHERE w.id = v.id)`,
      applied.flat(),
    );
    const versions = new Map(applied);
    for (const { id } of skipped.rows) {
      const v = versions.get(id)!;
      if ((this.applied.get(id) ?? -1) < v) this.applied.set(id, v);
    }
    if (skipped.rows.length > 0) this.scheduleFlush(LOCKED_RETRY_MS);
  }

  /**
   * Sightings of streams this instance holds. A worker marked lost while it had one here (this
   * instance stopped reporting it for three heartbeats, a stalled process) is alive again: it has
   * a live stream now, and nothing else would bring it back while the stream lasts.
   */
  private async writeSeen(seen: string[]): Promise<void> {
    const values = seen.map(() => "(?::uuid)").join(", ");
    const skipped = await this.knex.raw<{ rows: Array<{ id: string }> }>(
      `WITH v(id) AS (VALUES ${values}),
       free AS (SELECT w.id FROM workers w JOIN v ON w.id = v.id
                WHERE w.connected_instance = ? FOR NO KEY UPDATE OF w SKIP LOCKED),
       done AS (UPDATE workers SET last_seen_at = ?,
                  status = CASE WHEN status = 'lost' THEN 'alive' ELSE status END,
                  lost_at = CASE WHEN status = 'lost' THEN NULL ELSE lost_at END
                WHERE id IN (SELECT id FROM free)
                RETURNING id)
       SELECT v.id FROM v WHERE v.id NOT IN (SELECT id FROM done)
         AND EXISTS (SELECT 1 FROM workers w WHERE w.id = v.id AND w.connected_instance = ?)`,
      [...seen, this.instanceId, new Date(), this.instanceId],
    );
    for (const { id } of skipped.rows) this.seen.add(id);
    if (skipped.rows.length > 0) this.scheduleFlush(LOCKED_RETRY_MS);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    await this.flush();
  }
}

/** What a worker said it could not apply, as `last_nack` holds it. */
export interface Nack {
  version: number;
  error: string;
  at: string;
}

/** Rows per presence statement. */
const PRESENCE_CHUNK = 100;

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += PRESENCE_CHUNK)
    out.push(items.slice(i, i + PRESENCE_CHUNK));
  return out;
}
