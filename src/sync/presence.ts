import type { Knex } from "knex";
import { Channel } from "../db/channels.js";
import type { Logger } from "../logger.js";

const ACK_FLUSH_MS = 5;

/**
 * What the database knows of streams: which instance holds a worker's stream, when it was last
 * seen, and what it applied. Acknowledgements and sightings are written in batches (one statement
 * for many workers), never one write per frame or ping.
 */
export class PresenceWriter {
  private readonly applied = new Map<string, number>();
  private readonly seen = new Set<string>();
  private ackTimer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly knex: Knex,
    private readonly instanceId: string,
    private readonly logger: Logger,
  ) {}

  /** The worker's stream is now on this instance; it is alive (unless draining). */
  async connected(workerId: string, now: Date): Promise<void> {
    await this.knex.raw("SELECT pg_notify(?, ?)", [
      Channel.Streams,
      `${workerId} ${this.instanceId} ${now.getTime()}`,
    ]);
    await this.knex("workers")
      .where({ id: workerId })
      .update({
        connected_instance: this.instanceId,
        last_seen_at: now,
        lost_at: null,
        status: this.knex.raw("CASE WHEN status = 'draining' THEN 'draining' ELSE 'alive' END"),
      });
  }

  /** The stream ended here; the liveness clock starts now (unless another instance took over). */
  async disconnected(workerId: string, now: Date): Promise<void> {
    this.seen.delete(workerId);
    await this.knex("workers")
      .where({ id: workerId, connected_instance: this.instanceId })
      .update({ connected_instance: null, last_seen_at: now, liveness_since: now });
  }

  async nacked(workerId: string, nack: { version: number; error: string; at: string }) {
    await this.knex("workers")
      .where({ id: workerId })
      .update({ last_nack: JSON.stringify(nack) });
  }

  /** Records an acknowledged version soon, together with others. */
  acknowledged(workerId: string, version: number): void {
    if ((this.applied.get(workerId) ?? -1) < version) this.applied.set(workerId, version);
    this.ackTimer ??= setTimeout(() => {
      this.ackTimer = undefined;
      void this.flush();
    }, ACK_FLUSH_MS);
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
      if (applied.length > 0) {
        const values = applied.map(() => "(?::uuid, ?::bigint)").join(", ");
        await this.knex.raw(
          `UPDATE workers SET applied_version = GREATEST(workers.applied_version, v.version)
           FROM (VALUES ${values}) AS v(id, version) WHERE workers.id = v.id`,
          applied.flat(),
        );
      }
      if (seen.length > 0) {
        await this.knex("workers")
          .whereIn("id", seen)
          .andWhere({ connected_instance: this.instanceId })
          .update({ last_seen_at: new Date() });
      }
    } catch (error) {
      // Keep what was not written for the next flush; a database blip must not lose an ack.
      for (const [id, v] of applied) {
        if ((this.applied.get(id) ?? -1) < v) this.applied.set(id, v);
      }
      for (const id of seen) this.seen.add(id);
      this.logger.warn("could not record stream presence", { error: String(error) });
    }
  }

  async stop(): Promise<void> {
    if (this.ackTimer) clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    await this.flush();
  }
}
