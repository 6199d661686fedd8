import type { Knex } from "knex";

const FIRST_POLL_MS = 5;
const MAX_POLL_MS = 50;
/**
 * How long past the deadline a read of acknowledgements may take and still count: the read at the
 * deadline answers a healthy database's wait; an unreachable one delays the answer by this much.
 */
const READ_GRACE_MS = 100;
/** How often the database is asked about workers whose acknowledgements arrive here anyway. */
const STREAMING_HERE_CHECK_MS = 100;

/**
 * Answers "has every worker whose table this change touched acknowledged its version?". The
 * database's `applied_version` is the truth, whichever instance holds a worker's stream; a local
 * acknowledgement (from this instance's hub) wakes waiters at once instead of at the next poll.
 */
export class PropagationWatch {
  /**
   * Who waits on which worker. An acknowledgement calls only the waiters on its own worker, so
   * a fleet acknowledging empty diffs costs the requests waiting on other workers nothing.
   */
  private readonly waiters = new Map<string, Set<AckListener>>();
  /** The highest version each worker acknowledged on a stream of this instance. */
  private readonly ackedHere = new Map<string, number>();

  private streamsHere: (workerId: string) => boolean = () => false;

  /**
   * `onReadError` hears of a failed read of the workers' acknowledgements; the wait goes on (the
   * change is committed whatever the database does now), and ends as "pending" at its deadline.
   */
  constructor(
    private readonly knex: Knex,
    private readonly onReadError: (error: unknown) => void = () => undefined,
  ) {}

  /**
   * Tells the watch which workers stream to this instance. Their acknowledgements wake waiters
   * as they arrive, so for them the database is asked only every STREAMING_HERE_CHECK_MS (a
   * stream may have moved to another instance meanwhile) instead of at every poll.
   */
  followStreams(isHere: (workerId: string) => boolean): void {
    this.streamsHere = isHere;
  }

  /** Tells waiters on this instance that a worker acknowledged `version`. */
  acknowledged(workerId: string, version: number): void {
    if ((this.ackedHere.get(workerId) ?? -1) < version) this.ackedHere.set(workerId, version);
    const listeners = this.waiters.get(workerId);
    if (listeners) for (const listener of [...listeners]) listener(workerId, version);
  }

  /** Acknowledgements of a worker no longer streaming here (or removed) are no longer kept. */
  forget(workerId: string): void {
    this.ackedHere.delete(workerId);
  }

  /**
   * Resolves true once all `workerIds` applied `version` (or are gone), false at the deadline.
   * Workers streaming to this instance usually answer within milliseconds: the database is asked
   * only after the first FIRST_POLL_MS without their acknowledgement, then at growing intervals
   * while any of them streams elsewhere (see followStreams), and at the deadline. Never rejects:
   * the change it waits for is committed, so a database that cannot be read (or answers only
   * after the deadline) leaves the workers pending, not the request failed.
   */
  async waitApplied(version: number, workerIds: string[], timeoutMs: number): Promise<boolean> {
    const pending = new Set(workerIds.filter((id) => (this.ackedHere.get(id) ?? -1) < version));
    if (pending.size === 0) return true;
    const deadline = Date.now() + timeoutMs;
    let pollMs = FIRST_POLL_MS;
    // Settles once acknowledgements here leave nothing pending: ends a pause or a read at once.
    let allAcked!: () => void;
    const acked = new Promise<undefined>((resolve) => (allAcked = () => resolve(undefined)));
    const onAck: AckListener = (workerId, ackedVersion) => {
      if (ackedVersion >= version && pending.delete(workerId) && pending.size === 0) allAcked();
    };
    const watched = [...pending];
    for (const id of watched) this.listen(id, onAck);
    let reported = false;
    const pause = async (ms: number) => {
      let timer: NodeJS.Timeout | undefined;
      const elapsed = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
      try {
        await Promise.race([elapsed, acked]);
      } finally {
        clearTimeout(timer);
      }
    };
    try {
      await pause(Math.min(pollMs, Math.max(0, deadline - Date.now())));
      let lastRead = Date.now() - FIRST_POLL_MS;
      for (;;) {
        if (pending.size === 0) return true;
        const hereOnly = [...pending].every((id) => this.streamsHere(id));
        const now = Date.now();
        if (!hereOnly || now - lastRead >= STREAMING_HERE_CHECK_MS || now >= deadline) {
          const failed = await this.readAppliedBy(deadline, version, pending, acked);
          // One report per wait: a wait polls every few milliseconds through an outage.
          if (failed !== undefined && !reported) this.onReadError(failed.error);
          reported ||= failed !== undefined;
          lastRead = Date.now();
          if (pending.size === 0) return true;
        }
        const left = deadline - Date.now();
        if (left <= 0) return false;
        if (hereOnly) {
          await pause(Math.min(STREAMING_HERE_CHECK_MS - (Date.now() - lastRead), left));
        } else {
          await pause(Math.min(pollMs, left));
          pollMs = Math.min(pollMs * 2, MAX_POLL_MS);
        }
      }
    } finally {
      for (const id of watched) this.unlisten(id, onAck);
    }
  }

  /**
   * readApplied, given up on (the workers left pending) READ_GRACE_MS after the deadline, or as
   * soon as acknowledgements here leave nothing pending (`acked`); its error, if it failed.
   */
  private async readAppliedBy(
    deadline: number,
    version: number,
    pending: Set<string>,
    acked: Promise<undefined>,
  ): Promise<{ error: unknown } | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<undefined>((resolve) => {
      timer = setTimeout(
        () => resolve(undefined),
        Math.max(0, deadline - Date.now()) + READ_GRACE_MS,
      );
    });
    const read = this.readApplied(version, pending).then(
      () => undefined,
      (error: unknown) => ({ error }),
    );
    try {
      return await Promise.race([read, late, acked]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Drops from `pending` the workers the database says applied `version`, or no longer has. */
  private async readApplied(version: number, pending: Set<string>): Promise<void> {
    const rows = (await this.knex("workers")
      .whereIn("id", [...pending])
      .select("id", "applied_version")) as Array<{ id: string; applied_version: number }>;
    const present = new Map(rows.map((r) => [r.id, Number(r.applied_version)]));
    for (const id of [...pending]) {
      const applied = present.get(id);
      if (applied === undefined || applied >= version) pending.delete(id);
    }
  }

  private listen(workerId: string, listener: AckListener): void {
    const listeners = this.waiters.get(workerId);
    if (listeners) listeners.add(listener);
    else this.waiters.set(workerId, new Set([listener]));
  }

  private unlisten(workerId: string, listener: AckListener): void {
    const listeners = this.waiters.get(workerId);
    if (!listeners) return;
    listeners.delete(listener);
    if (listeners.size === 0) this.waiters.delete(workerId);
  }

  /** The highest version `workerId` acknowledged on a stream of this instance, while it is here. */
  acknowledgedHere(workerId: string): number | undefined {
    return this.ackedHere.get(workerId);
  }

  /** How many workers have requests waiting on them here (for tests: nothing is left behind). */
  get watchedWorkers(): number {
    return this.waiters.size;
  }
}

type AckListener = (workerId: string, version: number) => void;
