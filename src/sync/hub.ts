import type { JSONWebKeySet } from "jose";
import type { Knex } from "knex";
import type { Logger } from "../logger.js";
import type { RouteView } from "../routes/model.js";
import type { ChangeEntry } from "../versioning/change.js";
import type { PropagationWatch } from "../versioning/propagation.js";
import {
  missingWorkers,
  readEntries,
  readHead,
  readWorkerView,
  readWorkerViews,
  workersUpdatedAt,
  type LoggedEntry,
  type WorkerView,
} from "./changelog.js";
import { BehindClock } from "./behind-clock.js";
import { CloseCode, FrameError } from "./close-codes.js";
import { STREAM_PROTOCOL, type InboundFrame } from "./frames.js";
import type { PresenceWriter } from "./presence.js";
import { inSlices } from "./pacing.js";
import type { WorkerSession } from "./session.js";

/**
 * A worker no change touched gets an empty diff this share of HEARTBEAT_INTERVAL_S after the hub
 * processed the first version it lacks, plus its own part of EMPTY_ADVANCE_SPREAD: its version
 * follows the global one within the interval (docs/api.md), the fleet's empty diffs trickle out
 * instead of leaving together, and a worker under a stream of changes elsewhere gets one per
 * interval, not one per change. Such a diff draws no ack (docs/stream.md).
 */
const EMPTY_ADVANCE_AFTER = 0.5;
const EMPTY_ADVANCE_SPREAD = 0.4;
/** How often due empty diffs are looked for. */
const ADVANCE_TICK_MS = 50;
/**
 * At most this many times a tick's share of the fleet (all of it spread over
 * EMPTY_ADVANCE_SPREAD of the interval) are sent in one tick, and never fewer than
 * ADVANCE_MIN_PER_TICK: a backlog (after a pause of the event loop, say) drains over a few
 * ticks, not in one.
 */
const ADVANCE_TICK_SHARES = 4;
const ADVANCE_MIN_PER_TICK = 200;
/** Streams pinged in one turn of the event loop (see inSlices). */
const PACING_SLICE = 100;
/** Streams whose first frame is read from the database together. */
const INITIAL_BATCH = 500;
/** The change log's head is re-read this often even without a notification. */
const SAFETY_POLL_MS = 1000;
/**
 * Streams of removed workers are looked for this often: a removal's notification is lost when
 * it commits while this instance's LISTEN connection is down.
 */
const REMOVED_CHECK_MS = 5000;

export interface HubEvents {
  frameSent?(type: string): void;
  /** `sinceCommitS`: seconds since this instance committed `version`, if it did. */
  acknowledged?(workerId: string, version: number, sinceCommitS: number | undefined): void;
  /** A change's `frame` or `ack` stage (ops/change-stages.ts), for a diff that changed a table. */
  stage?(stage: "frame" | "ack", seconds: number): void;
  /** A worker's traffic report, reduced to routes of its table; `notOwn` counts the others. */
  activity?(workerId: string, routes: Record<string, string>, notOwn: number): void;
}

/**
 * Keeps every connected worker's table equal to the coordinator's. The change log is the truth:
 * a wake-up (a local commit, a NOTIFY from another instance, or the safety timer) makes the hub
 * read the versions it has not seen yet, once, and turn them into one diff per affected worker.
 * All work runs one task at a time, so frames to a worker are always contiguous.
 */
export class Hub {
  private readonly sessions = new Map<string, WorkerSession>();
  /** Every version up to this one has been turned into frames. */
  private processed = -1;
  /** The highest version this instance committed itself (its entries come without a read). */
  private committedHere = -1;
  /** The highest head another instance's notification named. */
  private heard = -1;
  private queue: Promise<void> = Promise.resolve();
  private pumpQueued = false;
  private advanceTicker: NodeJS.Timeout | undefined;
  private advanceQueued = false;
  /** When each range of versions was processed: how long a worker has been behind. */
  private readonly behind = new BehindClock();
  private pollTimer: NodeJS.Timeout | undefined;
  private removedTimer: NodeJS.Timeout | undefined;
  /** When this instance committed each recent version (performance.now()). */
  private readonly commitTimes = new Map<number, number>();
  private readonly starting: Array<{
    session: WorkerSession;
    since: number | undefined;
    done: () => void;
  }> = [];
  private initialsQueued = false;
  private stopped = false;

  constructor(
    private readonly knex: Knex,
    private readonly instanceId: string,
    private readonly heartbeatIntervalS: number,
    /** The public access-token keys, told to every worker in its hello. */
    private readonly accessKeys: Readonly<JSONWebKeySet>,
    private readonly presence: PresenceWriter,
    private readonly watch: PropagationWatch,
    private readonly logger: Logger,
    private readonly events: HubEvents = {},
  ) {}

  async start(): Promise<void> {
    this.processed = (await readHead(this.knex)).version;
    this.pollTimer = setInterval(() => this.wake(), SAFETY_POLL_MS);
    this.pollTimer.unref();
    this.removedTimer = setInterval(() => void this.closeRemoved(), REMOVED_CHECK_MS);
    this.removedTimer.unref();
  }

  /**
   * A commit of this instance: its entries are already in memory, so when nothing else committed
   * since the hub's last range they are sent without reading the log again. Also remembers when
   * each version committed, for the propagation histogram.
   */
  committedLocally(
    first: number,
    head: number,
    entries: ReadonlyArray<{ version: number; entry: ChangeEntry }>,
  ): void {
    const now = performance.now();
    for (let v = first; v <= head; v++) this.commitTimes.set(v, now);
    while (this.commitTimes.size > 10_000) {
      this.commitTimes.delete(this.commitTimes.keys().next().value as number);
    }
    if (this.stopped) return;
    this.committedHere = Math.max(this.committedHere, head);
    void this.enqueue(async () => {
      if (this.processed >= head) return;
      if (this.processed !== first - 1) return this.pump();
      this.distribute(
        head,
        entries.map(({ version, entry }) => ({
          version,
          worker_id: entry.workerId,
          route_id: entry.routeId,
          op: entry.op,
          route: (entry.route as RouteView | undefined) ?? null,
        })),
      );
    });
  }

  /** The newest routing version this instance knows of, read, committed or notified. */
  knownHead(): number {
    return Math.max(this.processed, this.committedHere, this.heard);
  }

  /**
   * Something may have committed: read the log's head soon (coalesced). `head`, when known (a
   * NOTIFY names it), skips the read for versions this instance committed and sends itself.
   */
  wake(head?: number): void {
    if (head !== undefined) this.heard = Math.max(this.heard, head);
    if (head !== undefined && head <= Math.max(this.processed, this.committedHere)) return;
    if (this.pumpQueued || this.stopped) return;
    this.pumpQueued = true;
    this.enqueue(async () => {
      this.pumpQueued = false;
      await this.pump();
    });
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    const run = this.queue.then(task).catch((error: unknown) => {
      this.logger.error("hub task failed", { error: String(error) });
    });
    this.queue = run;
    return run;
  }

  /** Reads versions after `processed` once and sends each affected worker one diff. */
  private async pump(): Promise<void> {
    const { version: head } = await readHead(this.knex);
    if (head <= this.processed) return;
    const from = this.processed;
    const entries = this.sessions.size > 0 ? await readEntries(this.knex, from, head) : [];
    this.distribute(head, entries);
  }

  /** When an untouched worker's empty diff is due after the version it lacks, in ms. */
  private get advanceAfterMs(): number {
    return EMPTY_ADVANCE_AFTER * this.heartbeatIntervalS * 1000;
  }

  private get advanceSpreadMs(): number {
    return EMPTY_ADVANCE_SPREAD * this.heartbeatIntervalS * 1000;
  }

  /** Sends the versions after `processed` up to `head`, given their entries in version order. */
  private distribute(head: number, entries: LoggedEntry[]): void {
    if (head <= this.processed) return;
    this.processed = head;
    this.behind.processed(head, performance.now());
    const byWorker = new Map<string, LoggedEntry[]>();
    for (const e of entries) {
      const list = byWorker.get(e.worker_id);
      if (list) list.push(e);
      else byWorker.set(e.worker_id, [e]);
    }
    // Only the workers this change touched, whatever the size of the fleet.
    for (const [workerId, mine] of byWorker) {
      const session = this.sessions.get(workerId);
      if (!session || !session.ready || session.version >= head) continue;
      if (mine.some((e) => e.version > session.version)) this.sendDiff(session, head, mine);
    }
    // The others learn the new version from an empty diff each (see advanceDue).
    this.startAdvancing();
  }

  private sendDiff(session: WorkerSession, to: number, entries: LoggedEntry[]): void {
    const from = session.version;
    const frame = session.diff(to, entries);
    if (!session.send(JSON.stringify(frame))) return;
    this.events.frameSent?.("diff");
    if (entries.length === 0 || !this.events.stage) return;
    // From the commit of the oldest change the frame carries (entries are in version order).
    const oldest = entries.find((e) => e.version > from)?.version;
    const committedAt = oldest === undefined ? undefined : this.commitTimes.get(oldest);
    const now = performance.now();
    session.changeSentAt = now;
    if (committedAt !== undefined) this.events.stage("frame", (now - committedAt) / 1000);
  }

  private startAdvancing(): void {
    if (this.advanceTicker || this.stopped) return;
    this.advanceTicker = setInterval(() => {
      if (this.advanceQueued) return;
      this.advanceQueued = true;
      void this.enqueue(async () => {
        this.advanceQueued = false;
        this.advanceDue();
      });
    }, ADVANCE_TICK_MS);
    this.advanceTicker.unref();
  }

  /**
   * Brings the workers whose empty diff is due up to the processed version: each one
   * advanceAfterMs plus its share of advanceSpreadMs after the hub processed the first version it
   * lacks. Runs in the hub's queue, in turn with the changes it distributes, and stops looking
   * once no stream is behind.
   */
  private advanceDue(): void {
    const now = performance.now();
    const limit = Math.max(
      ADVANCE_MIN_PER_TICK,
      Math.ceil(
        (this.sessions.size * ADVANCE_TICK_SHARES * ADVANCE_TICK_MS) / this.advanceSpreadMs,
      ),
    );
    let behind = false;
    let sent = 0;
    for (const session of this.sessions.values()) {
      if (session.closed || !session.ready || session.version >= this.processed) continue;
      behind = true;
      if (session.advanceDueFor !== session.version) {
        session.advanceDueFor = session.version;
        const since = this.behind.behindSince(session.version) ?? now;
        session.advanceDueMs =
          since + this.advanceAfterMs + session.advanceShare * this.advanceSpreadMs;
      }
      if (session.advanceDueMs > now) continue;
      this.sendDiff(session, this.processed, []);
      // A worker that acknowledged its table holds it at the new version too, without an ack.
      if (session.acked >= session.changedAt) this.applied(session, session.version);
      if (++sent >= limit) break;
    }
    // A stream behind for longer than this is due whatever it lacks.
    this.behind.forgetBefore(now - 2 * (this.advanceAfterMs + this.advanceSpreadMs));
    if (!behind && this.advanceTicker) {
      clearInterval(this.advanceTicker);
      this.advanceTicker = undefined;
    }
  }

  /**
   * Takes a new stream: replaces an older one of the same worker (4000), says hello, then sends
   * a diff from `since` where the log holds every later version, else a snapshot. Streams are
   * older or newer by their numbers, not by when they reach this point: one admitted before a
   * stream that is already here is the one replaced.
   */
  attach(session: WorkerSession, since: number | undefined): Promise<void> {
    const previous = this.sessions.get(session.workerId);
    if (previous && previous.streamSeq > session.streamSeq) {
      session.close(CloseCode.Replaced, "replaced by a newer stream");
      return Promise.resolve();
    }
    if (previous) {
      previous.close(CloseCode.Replaced, "replaced by a newer stream");
    }
    this.sessions.set(session.workerId, session);
    session.sendFrame({
      type: "hello",
      protocol: STREAM_PROTOCOL,
      instance_id: this.instanceId,
      heartbeat_interval_s: this.heartbeatIntervalS,
      access_keys: this.accessKeys,
    });
    this.events.frameSent?.("hello");
    session.started = this.presence
      .connected(session.workerId, session.streamSeq, session.connectedAt)
      .catch((error: unknown) => {
        this.logger.warn("could not record stream start", { error: String(error) });
      });
    return new Promise<void>((done) => {
      this.starting.push({ session, since, done });
      if (this.initialsQueued) return;
      this.initialsQueued = true;
      void this.enqueue(() => this.sendInitials());
    });
  }

  /**
   * The first frame of every stream that started since the last call, from one read of the
   * database for all of them (up to INITIAL_BATCH): a reconnecting fleet is served in a few
   * statements per batch.
   */
  private async sendInitials(): Promise<void> {
    this.initialsQueued = false;
    const batch = this.starting.splice(0, INITIAL_BATCH);
    if (this.starting.length > 0) {
      this.initialsQueued = true;
      void this.enqueue(() => this.sendInitials());
    }
    const live = batch.filter((b) => !b.session.closed);
    try {
      if (live.length === 0) return;
      const views = await readWorkerViews(
        this.knex,
        live.map((b) => ({ workerId: b.session.workerId, since: b.since })),
      );
      live.forEach((b, i) => this.sendFirstFrame(b.session, b.since, views[i]!));
    } catch (error) {
      this.logger.warn("cannot read workers' tables", { error: String(error) });
      for (const b of live) {
        b.session.closeWith(
          CloseCode.InternalError,
          FrameError.Internal,
          "table unavailable; reconnect",
        );
      }
    } finally {
      for (const b of batch) b.done();
    }
  }

  private sendFirstFrame(
    session: WorkerSession,
    since: number | undefined,
    view: WorkerView,
  ): void {
    if (session.closed) return;
    if (!view.exists) {
      session.closeWith(CloseCode.WorkerRemoved, FrameError.WorkerRemoved, "worker was removed");
      return;
    }
    if (view.entries && since !== undefined) {
      const frame = session.resume(since, view.head, view.entries, view.table);
      if (session.send(JSON.stringify(frame))) this.events.frameSent?.("diff");
    } else {
      if (session.send(JSON.stringify(session.snapshot(view.head, view.table)))) {
        this.events.frameSent?.("snapshot");
      }
    }
    if (view.head > this.processed) this.wake();
  }

  /** Whether the worker holds an open stream to this instance (its acks arrive here). */
  streaming(workerId: string): boolean {
    const session = this.sessions.get(workerId);
    return session !== undefined && !session.closed;
  }

  /** Acts on one validated frame from a worker. */
  async receive(session: WorkerSession, frame: InboundFrame): Promise<void> {
    session.lastSeen = Date.now();
    switch (frame.type) {
      case "ack": {
        if (!session.digestMatches(frame.version, frame.digest)) {
          this.requestResync(session);
          return;
        }
        session.forgetBefore(frame.version);
        const coversChange =
          frame.version >= session.changedAt && session.changedAt > session.acked;
        // The empty diffs sent after a version that holds the worker's last change took it on
        // without changing its table: it holds the last of them too.
        this.applied(
          session,
          frame.version >= session.changedAt ? session.version : frame.version,
          coversChange,
        );
        const now = performance.now();
        if (coversChange && session.changeSentAt !== undefined) {
          this.events.stage?.("ack", (now - session.changeSentAt) / 1000);
          session.changeSentAt = undefined;
        }
        const committedAt = this.commitTimes.get(frame.version);
        this.events.acknowledged?.(
          session.workerId,
          frame.version,
          committedAt === undefined ? undefined : (now - committedAt) / 1000,
        );
        return;
      }
      case "nack":
        await this.presence.nacked(session.workerId, {
          version: frame.version,
          error: frame.error,
          at: new Date().toISOString(),
        });
        return;
      case "resync":
        this.requestResync(session);
        return;
      case "activity": {
        // Only routes this stream's worker holds: a report for another worker's route must not
        // stand in for (or hide) that worker's own reports.
        const own: Record<string, string> = {};
        let notOwn = 0;
        for (const [routeId, time] of Object.entries(frame.routes)) {
          const id = routeId.toLowerCase();
          if (session.table.has(id)) own[id] = time;
          else notOwn += 1;
        }
        this.events.activity?.(session.workerId, own, notOwn);
        return;
      }
    }
  }

  /**
   * The worker holds its table at `version`: recorded as its applied version, now when `urgent`
   * (a change someone may wait for), else with the next lazy batch.
   */
  private applied(session: WorkerSession, version: number, urgent = false): void {
    if (version <= session.acked && !urgent) return;
    session.acked = Math.max(session.acked, version);
    this.presence.acknowledged(session.workerId, version, urgent);
    this.watch.acknowledged(session.workerId, version);
  }

  /**
   * Queues a snapshot for the stream unless one is queued already: a worker repeating resync (or
   * a wrong digest) thousands of times costs one read of its table, not thousands ahead of every
   * other stream's diffs in the hub's one queue.
   */
  private requestResync(session: WorkerSession): void {
    if (session.resyncQueued) return;
    session.resyncQueued = true;
    void this.enqueue(async () => {
      session.resyncQueued = false;
      await this.resync(session);
    });
  }

  private async resync(session: WorkerSession): Promise<void> {
    if (session.closed) return;
    const view = await this.readViewOrClose(session, undefined);
    if (!view) return;
    if (!view.exists) {
      session.closeWith(CloseCode.WorkerRemoved, FrameError.WorkerRemoved, "worker was removed");
      return;
    }
    if (session.send(JSON.stringify(session.snapshot(view.head, view.table)))) {
      this.events.frameSent?.("snapshot");
    }
  }

  /**
   * The worker's table from the database; when it cannot be read (the database is away), the
   * stream is closed with 1011 so that the worker reconnects and resumes rather than waiting on a
   * stream that will never bring its table.
   */
  private async readViewOrClose(
    session: WorkerSession,
    since: number | undefined,
  ): Promise<Awaited<ReturnType<typeof readWorkerView>> | undefined> {
    try {
      return await readWorkerView(this.knex, session.workerId, since);
    } catch (error) {
      this.logger.warn("cannot read a worker's table", {
        worker_id: session.workerId,
        error: String(error),
      });
      session.closeWith(
        CloseCode.InternalError,
        FrameError.Internal,
        "table unavailable; reconnect",
      );
      return undefined;
    }
  }

  /** The stream closed: forget it and start the worker's liveness clock. */
  detach(session: WorkerSession): void {
    session.closed = true;
    if (this.sessions.get(session.workerId) !== session) return;
    this.sessions.delete(session.workerId);
    // Its acknowledgements are in the database (or on their way): waits read them there.
    this.watch.forget(session.workerId);
    this.recordEnd(session, new Date());
  }

  /**
   * Writes the stream's end after its start: a stream cut as soon as it opened must not have its
   * end written first and its start, landing after, leave the worker connected for good.
   */
  private recordEnd(session: WorkerSession, at: Date): Promise<void> {
    return session.started
      .then(() => this.presence.disconnected(session.workerId, session.streamSeq, at))
      .catch((error: unknown) => {
        this.logger.warn("could not record stream end", { error: String(error) });
      });
  }

  /** Another instance took this worker's stream: close ours with 4000 if it is the older. */
  replacedElsewhere(workerId: string, instanceId: string, streamSeq: number): void {
    if (instanceId === this.instanceId) return;
    const session = this.sessions.get(workerId);
    if (session && session.streamSeq < streamSeq) {
      session.close(CloseCode.Replaced, "replaced by a stream on another instance");
    }
  }

  /** The worker was removed: close its stream. */
  removed(workerId: string): void {
    this.watch.forget(workerId);
    this.sessions
      .get(workerId)
      ?.closeWith(CloseCode.WorkerRemoved, FrameError.WorkerRemoved, "worker was removed");
  }

  /**
   * The worker registered again with another address: its routes' URLs changed without a new
   * version, so a diff would not carry them. Its stream, if this instance holds it, gets a snapshot.
   */
  readdressed(workerId: string): void {
    const session = this.sessions.get(workerId);
    if (!session || session.closed || this.stopped) return;
    // Checked in turn, not now: a first frame read before the new address may still be on its
    // way, and the snapshot must come after it.
    void this.enqueue(async () => {
      if (session.ready) await this.resync(session);
    });
  }

  /**
   * Notifications may have been missed (the LISTEN connection was down): a worker whose row
   * changed while its stream was open may have registered again with another address, so it gets
   * a snapshot, as the notice would have brought it. One read for this instance's streams.
   */
  async afterMissedNotices(): Promise<void> {
    const sessions = [...this.sessions.values()].filter((s) => !s.closed);
    if (sessions.length === 0 || this.stopped) return;
    let updated: Map<string, Date>;
    try {
      updated = await workersUpdatedAt(
        this.knex,
        sessions.map((s) => s.workerId),
      );
    } catch (error) {
      this.logger.warn("could not check workers for missed changes", { error: String(error) });
      return;
    }
    for (const session of sessions) {
      const at = updated.get(session.workerId);
      if (at && at > session.connectedAt) this.readdressed(session.workerId);
    }
  }

  /** Closes the streams of workers that no longer exist, as a missed removal notice would have. */
  private async closeRemoved(): Promise<void> {
    const ids = [...this.sessions.keys()];
    if (ids.length === 0 || this.stopped) return;
    try {
      for (const id of await missingWorkers(this.knex, ids)) this.removed(id);
    } catch (error) {
      this.logger.warn("could not check for removed workers", { error: String(error) });
    }
  }

  /**
   * Pings every stream once per heartbeat interval, a slice at a time over the first half of it;
   * a stream that missed two pongs is cut.
   */
  heartbeat(): void {
    inSlices(
      [...this.sessions.values()],
      (session) => {
        if (session.closed) return;
        if (session.missedPongs >= 2) {
          session.socket.terminate();
          return;
        }
        session.missedPongs += 1;
        session.socket.ping();
      },
      {
        slice: PACING_SLICE,
        spreadMs: (this.heartbeatIntervalS * 1000) / 2,
        maxPauseMs: (this.heartbeatIntervalS * 1000) / 2,
        stopped: () => this.stopped,
      },
    );
  }

  pong(session: WorkerSession): void {
    session.missedPongs = 0;
    session.lastSeen = Date.now();
    this.presence.sighted(session.workerId);
  }

  /** Closes every stream with "going away" and stops the timers. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.pollTimer) clearInterval(this.pollTimer);
    if (this.removedTimer) clearInterval(this.removedTimer);
    if (this.advanceTicker) clearInterval(this.advanceTicker);
    for (const session of this.sessions.values()) {
      session.close(CloseCode.GoingAway, "coordinator shutting down");
    }
    await this.queue;
    const sessions = [...this.sessions.values()];
    this.sessions.clear();
    const now = new Date();
    await Promise.all(sessions.map((session) => this.recordEnd(session, now)));
    await this.presence.stop();
  }
}
