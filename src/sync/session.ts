import type { WebSocket } from "ws";
import { DigestedTable } from "../client/digest.js";
import type { RouteView } from "../routes/model.js";
import { CloseCode, FrameError, MAX_BUFFERED_BYTES } from "./close-codes.js";
import type { LoggedEntry } from "./changelog.js";
import type { DiffFrame, OutboundFrame, SnapshotFrame } from "./frames.js";

/** How many unacknowledged frames' digests a session remembers to check acks against. */
const REMEMBERED_DIGESTS = 64;

/**
 * One worker's open stream and what the coordinator has sent down it: the worker's table as of
 * `version` (route id → route version), from which each frame's digest is computed.
 */
export class WorkerSession {
  /** The version of the last frame sent: what the worker holds once it applied everything. */
  version = -1;
  /** False until the first snapshot or diff went out; changes wait until then. */
  ready = false;
  /** The worker's table as sent (route id → version), its digest kept in step. */
  readonly table = new DigestedTable();
  /** The version of the last frame that changed the worker's table (not an empty diff). */
  changedAt = -1;
  /** The highest version the worker acknowledged on this stream. */
  acked = -1;
  /** When the hub last handed a diff that changed the table to the socket (performance.now()). */
  changeSentAt: number | undefined;
  /** When this worker's empty diff is due (performance.now()) for the version it holds. */
  advanceDueMs = 0;
  /** The version `advanceDueMs` was worked out for. */
  advanceDueFor = -1;
  /** Where in the empty-diff spread this worker falls (0–1), so the fleet's are not sent at once. */
  readonly advanceShare = Math.random();
  private readonly digests = new Map<number, string>();
  lastSeen = Date.now();
  missedPongs = 0;
  closed = false;
  /** Length of every frame handed to the socket so far (see send). */
  private enqueued = 0;
  /** The one frame over MAX_BUFFERED_BYTES being sent: where it starts in `enqueued`, its size. */
  private oversized: { start: number; size: number } | undefined;
  /** A snapshot for this stream waits in the hub's queue: more resync requests add nothing. */
  resyncQueued = false;

  /** Its start's write to the database, which its end's write follows (see Hub.detach). */
  started: Promise<void> = Promise.resolve();

  constructor(
    readonly workerId: string,
    readonly socket: WebSocket,
    readonly connectedAt: Date,
    /** Its place among the worker's streams on every instance (see numberStreams). */
    readonly streamSeq: number,
  ) {}

  snapshot(version: number, routes: RouteView[]): SnapshotFrame {
    this.table.reset(routes);
    this.changedAt = version;
    return {
      type: "snapshot",
      version,
      routes,
      digest: this.advance(version),
    };
  }

  /**
   * The diff that takes this worker from its version to `to`, given the log entries in between
   * for this worker (in version order; the last entry per route wins).
   */
  diff(to: number, entries: Iterable<LoggedEntry>): DiffFrame {
    const { upserts, deletes } = lastChanges(entries, this.version);
    for (const r of upserts) this.table.set(r.id, r.version);
    for (const id of deletes) this.table.delete(id);
    const from = this.version;
    if (upserts.length > 0 || deletes.length > 0) this.changedAt = to;
    return { type: "diff", from, to, upserts, deletes, digest: this.advance(to) };
  }

  /**
   * The first diff of a resumed stream: the changes after `since`, and the worker's whole table
   * at `to` as read from the database in the same snapshot, which the digest is computed from.
   */
  resume(since: number, to: number, entries: LoggedEntry[], table: RouteView[]): DiffFrame {
    const { upserts, deletes } = lastChanges(entries, since);
    this.table.reset(table);
    this.changedAt = to;
    return { type: "diff", from: since, to, upserts, deletes, digest: this.advance(to) };
  }

  private advance(version: number): string {
    this.version = version;
    this.ready = true;
    // The table keeps its digest until it changes: an empty diff costs no hashing.
    const digest = this.table.digest;
    this.digests.set(version, digest);
    if (this.digests.size > REMEMBERED_DIGESTS) {
      const oldest = this.digests.keys().next().value as number;
      this.digests.delete(oldest);
    }
    return digest;
  }

  /** True when `digest` is what the worker's table should hash to at `version`. */
  digestMatches(version: number, digest: string): boolean {
    return this.digests.get(version) === digest;
  }

  /** Acknowledged versions below this one no longer need their digests. */
  forgetBefore(version: number): void {
    for (const v of this.digests.keys()) if (v < version) this.digests.delete(v);
  }

  /**
   * Sends an encoded frame. A worker that cannot keep up is closed (4008) rather than
   * buffered without bound; it resumes with `since` or gets a snapshot when it returns.
   */
  send(encoded: string): boolean {
    if (this.closed || this.socket.readyState !== this.socket.OPEN) return false;
    // A frame larger than the limit on its own (the snapshot of a table of some 14,000 routes or
    // more) is not the worker falling behind: what is left of it to send does not count, or such
    // a worker could never hold its table. One such frame at a time: one queued behind another
    // counts in full. Sizes are string lengths, as bufferedAmount counts a frame written as text.
    if (encoded.length > MAX_BUFFERED_BYTES && this.oversizedLeft() === 0) {
      this.oversized = { start: this.enqueued, size: encoded.length };
    }
    this.enqueued += encoded.length;
    this.socket.send(encoded);
    if (this.socket.bufferedAmount - this.oversizedLeft() > MAX_BUFFERED_BYTES) {
      this.closeWith(CloseCode.TooSlow, FrameError.TooSlow, "unsent data passed 8 MiB");
      return false;
    }
    return true;
  }

  /** What the socket has still to send of the one oversized frame it is sending, else 0. */
  private oversizedLeft(): number {
    if (!this.oversized) return 0;
    // The socket sends in order: everything before the first byte still buffered has gone.
    const sent = this.enqueued - this.socket.bufferedAmount;
    const { start, size } = this.oversized;
    const left = Math.min(size, Math.max(0, start + size - sent));
    if (left === 0) this.oversized = undefined;
    return left;
  }

  sendFrame(frame: OutboundFrame): boolean {
    return this.send(JSON.stringify(frame));
  }

  /** Sends an error frame, then closes with `code`. */
  closeWith(code: number, errorCode: string, message: string): void {
    if (this.closed) return;
    this.closed = true;
    if (this.socket.readyState === this.socket.OPEN) {
      this.socket.send(JSON.stringify({ type: "error", code: errorCode, message }));
      this.closeSocket(code, message);
    }
  }

  close(code: number, reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.closeSocket(code, reason);
  }

  /** A close frame's reason holds at most 123 bytes; the error frame before it says it all. */
  private closeSocket(code: number, reason: string): void {
    this.socket.close(code, closeReason(reason));
  }
}

/** Bytes a close frame leaves for its reason (RFC 6455: 125 bytes of payload, 2 for the code). */
const MAX_CLOSE_REASON_BYTES = 123;

/**
 * `reason` cut to what a close frame can carry, at a character boundary: it may quote what the
 * worker sent, so its length in bytes is anyone's guess.
 */
export function closeReason(reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_CLOSE_REASON_BYTES) return reason;
  let bytes = 0;
  let cut = "";
  for (const char of reason) {
    bytes += Buffer.byteLength(char);
    if (bytes > MAX_CLOSE_REASON_BYTES - 3) break;
    cut += char;
  }
  return `${cut}…`;
}

/** The last change per route among entries after `after`. */
function lastChanges(
  entries: Iterable<LoggedEntry>,
  after: number,
): { upserts: RouteView[]; deletes: string[] } {
  const last = new Map<string, LoggedEntry>();
  for (const e of entries) if (e.version > after) last.set(e.route_id, e);
  const upserts: RouteView[] = [];
  const deletes: string[] = [];
  for (const e of last.values()) {
    if (e.op === "upsert" && e.route) upserts.push(e.route);
    else deletes.push(e.route_id);
  }
  return { upserts, deletes };
}
