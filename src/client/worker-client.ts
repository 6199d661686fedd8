import { EventEmitter } from "node:events";
import WebSocket from "ws";
import {
  ACTIVITY_FRAME_BUDGET_BYTES,
  ACTIVITY_FRAME_MAX_ROUTES,
  ActivityBuffer,
} from "./activity.js";
import type { AccessKeySet } from "./access-keys.js";
import { fullJitterDelay } from "./backoff.js";
import { StreamCloseCode } from "./close-codes.js";
import { streamUrl } from "./endpoints.js";
import {
  STREAM_PROTOCOL,
  encodeWorkerFrame,
  parseCoordinatorFrame,
  type DiffFrame,
  type HelloFrame,
  type InboundFrameResult,
  type SnapshotFrame,
  type WorkerFrame,
} from "./frames.js";
import {
  RegistrationError,
  registerWorker,
  type RegistrationAnswer,
  type WorkerRegistration,
} from "./registration.js";
import type { Route } from "./route.js";
import {
  RoutingTable,
  isEmptyChange,
  type ApplyOutcome,
  type RoutingTableView,
  type TableChange,
} from "./routing-table.js";
import {
  CoordinatorStreamError,
  StreamFrameError,
  RoutesRefusedError,
  StreamRefusedError,
  TableMismatchError,
} from "./stream-errors.js";

export interface WorkerClientOptions {
  /** The coordinator's HTTP base URL, e.g. `http://127.0.0.1:6030` (a path prefix is kept). */
  coordinatorUrl: string;
  registrationToken: string;
  registration: WorkerRegistration;
  /**
   * The worker token this worker was given before (kept across restarts, e.g. in the worker's
   * data folder): re-registering a name the coordinator knows needs it, else the answer is 409.
   * Read the current one from `workerToken` after `registered`.
   */
  workerToken?: string;
  /** First reconnect ceiling; doubles per failed attempt up to `reconnectMaxMs`. Default 100. */
  reconnectMinMs?: number;
  /** Largest reconnect ceiling. Default 10 000. */
  reconnectMaxMs?: number;
  /** Activity frames are sent at most this often. Default 5000. */
  activityIntervalMs?: number;
  /** Time limit of the registration request and of the stream upgrade. Default 10 000. */
  requestTimeoutMs?: number;
  /** Replaces the global fetch (tests, proxies with their own agent). */
  fetch?: typeof globalThis.fetch;
  /** Replaces Math.random in the reconnect jitter. */
  random?: () => number;
  /**
   * Serves each applied change before its version is acknowledged (an acknowledged version is a
   * served version). A returned text is sent as that version's `nack` instead of the ack: the
   * table moves on, and the text says which routes of it the worker refused to serve.
   */
  apply?: (change: TableChange) => string | undefined;
  /**
   * The identity and table kept from an earlier run: the stream resumes with `since` at once,
   * without registering first. Refused (401, 403, 404), the client registers again.
   */
  resume?: ResumeState;
}

/** What a worker keeps across restarts to resume its stream without registering. */
export interface ResumeState {
  workerId: string;
  token: string;
  streamUrl: string;
  version: number;
  routes: readonly Route[];
  /** The coordinator's access-token keys last received: tokens stay checkable while cut off. */
  accessKeys?: AccessKeySet;
}

export interface RegisteredEvent {
  workerId: string;
  name: string;
  version: number;
  routes: number;
  /** The identity this client held before, when the coordinator had removed it (404). */
  previousWorkerId: string | null;
  /** The access-token keys the registration answer carried (null from a coordinator without). */
  accessKeys: AccessKeySet | null;
}

export interface ConnectedEvent {
  workerId: string;
  instanceId: string;
  protocol: number;
  /** The access-token keys the hello carried (null from a coordinator without). */
  accessKeys: AccessKeySet | null;
}

export interface SyncedEvent {
  version: number;
  digest: string;
  routes: number;
}

export interface DisconnectedEvent {
  code: number;
  reason: string;
}

export type StopCause = "stopped" | "replaced" | "registration_refused" | "failed";

export interface StoppedEvent {
  cause: StopCause;
  error?: Error;
}

export interface WorkerClientEvents {
  registered: [RegisteredEvent];
  connected: [ConnectedEvent];
  synced: [SyncedEvent];
  /** A key set arrived (registration answer or hello): hand it to an AccessTokenVerifier. */
  accessKeys: [AccessKeySet];
  change: [TableChange];
  disconnected: [DisconnectedEvent];
  stopped: [StoppedEvent];
  error: [Error];
}

interface Session {
  workerId: string;
  token: string;
  streamUrl: string;
}

interface StreamEnd {
  code: number;
  /** The HTTP status that refused the upgrade, if it was refused. */
  refusedStatus: number | undefined;
  /** Whether a snapshot or diff was applied on this stream. */
  synced: boolean;
}

/** Statuses of a refused upgrade that mean the worker token or identity is no longer valid. */
const REREGISTER_STATUSES = new Set([401, 403, 404]);
/** A stream silent (no frame, no ping) for this many heartbeat intervals is taken for dead. */
const LIVENESS_HEARTBEATS = 3;
/** How long stop() waits for the coordinator to answer the close before cutting the socket. */
const CLOSE_GRACE_MS = 2000;

/**
 * Keeps a proxy worker's routing table in step with the coordinator.
 *
 * `start()` registers the worker (POST /workers/register), loads the table it is given, then
 * holds the worker's stream open: each snapshot or diff is applied atomically, `change` listeners
 * run, and only then is the version acknowledged. A diff that does not start at the table's
 * version or does not produce the announced digest is not applied; the client asks for a
 * snapshot (`resync`) and ignores further diffs until it arrives. A snapshot whose digest does
 * not match is answered with a `nack` (asking again would only bring the same snapshot back).
 *
 * Reconnection: after any loss of the stream the client waits a fully jittered, exponentially
 * growing delay (`reconnectMinMs` doubling up to `reconnectMaxMs`, reset once a stream syncs) and
 * resumes with `since` = the table's version. When the upgrade is refused with 404 (the worker
 * was removed) or 401/403 (its token is no longer accepted), it registers again under the same
 * name, proving who it is with its last worker token (X-Worker-Token): after a removal the name
 * is free and that yields a new identity (`registered` tells the previous id); a name still
 * held by a worker whose token this client lacks is refused (409) and the client stops.
 *
 * Close code 4000 means another stream of this worker took over: two processes are running with
 * one name. Fighting back would make them replace each other forever, so the client emits
 * `disconnected` then `stopped` ({cause: "replaced"}) and stays down.
 *
 * `error` events are informational (the client recovers by itself, or emits `stopped`) and are
 * emitted only while someone listens, so a worker that does not care is not crashed by them.
 */
export class WorkerClient extends EventEmitter<WorkerClientEvents> {
  readonly #options: Required<
    Omit<WorkerClientOptions, "fetch" | "random" | "workerToken" | "apply" | "resume">
  > & {
    fetch: typeof globalThis.fetch;
    random: () => number;
    apply: ((change: TableChange) => string | undefined) | undefined;
  };
  readonly #table = new RoutingTable();
  readonly #activity = new ActivityBuffer();
  #workerId: string | undefined;
  /** The last worker token the coordinator gave (or the one configured): proof at re-registration. */
  #workerToken: string | undefined;
  #session: Session | undefined;
  #heartbeatIntervalS = 10;
  #accessKeys: AccessKeySet | undefined;
  #attempt = 0;
  #awaitingSnapshot = false;
  /**
   * The version the coordinator counts this worker at on the current stream: the last one
   * acknowledged, carried along by the empty diffs after it (undefined before the first ack).
   */
  #ackedOnStream: number | undefined;
  #socket: WebSocket | undefined;
  #startPromise: Promise<void> | undefined;
  #stopPromise: Promise<void> | undefined;
  #stopped = false;
  #registerAbort: AbortController | undefined;
  #backoffTimer: NodeJS.Timeout | undefined;
  #wakeFromBackoff: (() => void) | undefined;
  #livenessTimer: NodeJS.Timeout | undefined;
  #livenessSilenceMs = 0;
  #activityTimer: NodeJS.Timeout | undefined;
  #lastActivitySentAt = Number.NEGATIVE_INFINITY;

  constructor(options: WorkerClientOptions) {
    super();
    this.#options = {
      coordinatorUrl: options.coordinatorUrl,
      registrationToken: options.registrationToken,
      registration: options.registration,
      reconnectMinMs: options.reconnectMinMs ?? 100,
      reconnectMaxMs: options.reconnectMaxMs ?? 10_000,
      activityIntervalMs: options.activityIntervalMs ?? 5000,
      requestTimeoutMs: options.requestTimeoutMs ?? 10_000,
      fetch: options.fetch ?? globalThis.fetch,
      random: options.random ?? Math.random,
      apply: options.apply,
    };
    this.#workerToken = options.workerToken ?? options.resume?.token;
    const resume = options.resume;
    if (resume !== undefined) {
      this.#table.applySnapshot(resume.version, resume.routes);
      this.#workerId = resume.workerId;
      this.#accessKeys = resume.accessKeys;
      this.#session = {
        workerId: resume.workerId,
        token: resume.token,
        streamUrl: resume.streamUrl,
      };
    }
    // Fail at construction, not at the first reconnect, on a URL that cannot work.
    streamUrl(undefined, this.#options.coordinatorUrl, "probe", 0);
  }

  /** The worker's routing table: read it, the client alone writes it. */
  get table(): RoutingTableView {
    return this.#table;
  }

  /**
   * The newest access-token key set the coordinator gave (registration answer, then every
   * hello), or undefined before the first or from a coordinator that has none.
   */
  get accessKeys(): AccessKeySet | undefined {
    return this.#accessKeys;
  }

  /** The coordinator's id for this worker, once registered. */
  get workerId(): string | undefined {
    return this.#workerId;
  }

  /** What `resume` needs to pick this worker's stream up after a restart, once registered. */
  get resumeState(): ResumeState | undefined {
    const session = this.#session;
    if (session === undefined) return undefined;
    return {
      workerId: session.workerId,
      token: session.token,
      streamUrl: session.streamUrl,
      version: this.#table.version,
      routes: this.#table.routes,
      ...(this.#accessKeys === undefined ? {} : { accessKeys: this.#accessKeys }),
    };
  }

  /**
   * The worker token, once registered (or as configured before): a worker that keeps it across
   * restarts registers again as the same worker. A secret: never log it.
   */
  get workerToken(): string | undefined {
    return this.#workerToken;
  }

  /**
   * Registers the worker and opens its stream. Resolves once registered, with the table loaded
   * (the stream then runs in the background); retries what time may cure (network errors, 5xx)
   * until registered or stopped. Rejects with a RegistrationError when the coordinator refuses the
   * registration for good (bad token, invalid body, conflict). Calling it again returns the same
   * promise.
   */
  start(): Promise<void> {
    if (this.#stopped && this.#startPromise === undefined) {
      return Promise.reject(new Error("WorkerClient was stopped before it started"));
    }
    this.#startPromise ??= this.#begin();
    return this.#startPromise;
  }

  /** Closes the stream (code 1000) after sending pending activity, and cancels every timer. */
  stop(): Promise<void> {
    return this.#halt("stopped");
  }

  /**
   * Records traffic on a route. Reports are merged (latest time per route) and sent at most every
   * `activityIntervalMs`, as one `activity` frame or, past ACTIVITY_FRAME_MAX_ROUTES routes or
   * ACTIVITY_FRAME_BUDGET_BYTES of JSON, several in a row; while disconnected they wait. Throws a
   * RangeError on an invalid date.
   */
  reportActivity(routeId: string, at: Date = new Date()): void {
    if (this.#stopped) return;
    this.#activity.record(routeId, at);
    this.#scheduleActivityFlush();
  }

  async #begin(): Promise<void> {
    // A resumed worker already holds a session: its stream picks up from the kept version.
    if (this.#session !== undefined || (await this.#registerUntilAccepted(true))) {
      void this.#runStreams();
    }
  }

  /** Returns false when the client stopped before a registration was accepted. */
  async #registerUntilAccepted(initial: boolean): Promise<boolean> {
    while (!this.#stopped) {
      const abort = new AbortController();
      this.#registerAbort = abort;
      try {
        const answer = await registerWorker({
          coordinatorUrl: this.#options.coordinatorUrl,
          registrationToken: this.#options.registrationToken,
          registration: this.#options.registration,
          workerToken: this.#workerToken,
          timeoutMs: this.#options.requestTimeoutMs,
          fetch: this.#options.fetch,
          signal: abort.signal,
        });
        if (this.#stopped) return false;
        this.#adopt(answer);
        return true;
      } catch (error) {
        if (this.#stopped) return false;
        const failure =
          error instanceof RegistrationError
            ? error
            : new RegistrationError(String(error), undefined, false);
        if (!failure.retryable) {
          // The first time, start() rejects with it; later, only the listeners can be told.
          if (!initial) this.#reportError(failure);
          void this.#halt("registration_refused", failure);
          if (initial) throw failure;
          return false;
        }
        this.#reportError(failure);
        await this.#backoff();
      } finally {
        this.#registerAbort = undefined;
      }
    }
    return false;
  }

  #adopt(answer: RegistrationAnswer): void {
    const previousWorkerId =
      this.#workerId !== undefined && this.#workerId !== answer.worker.id ? this.#workerId : null;
    this.#workerId = answer.worker.id;
    this.#workerToken = answer.token;
    this.#session = {
      workerId: answer.worker.id,
      token: answer.token,
      streamUrl: answer.stream_url,
    };
    this.#heartbeatIntervalS = answer.heartbeat_interval_s;
    const outcome = this.#table.applySnapshot(answer.version, answer.routes);
    this.#takeAccessKeys(answer.access_keys);
    this.emit("registered", {
      workerId: answer.worker.id,
      name: answer.worker.name,
      version: answer.version,
      routes: this.#table.size,
      previousWorkerId,
      accessKeys: answer.access_keys ?? null,
    });
    if (outcome.applied && !isEmptyChange(outcome.change)) {
      // Nothing is acknowledged after a registration: a refusal can only be told to listeners.
      const refusal = this.#options.apply?.(outcome.change);
      if (refusal !== undefined) this.#reportError(new RoutesRefusedError(refusal));
      this.emit("change", outcome.change);
    }
  }

  async #runStreams(): Promise<void> {
    try {
      while (!this.#stopped) {
        if (this.#session === undefined) {
          if (!(await this.#registerUntilAccepted(false))) return;
          continue;
        }
        const end = await this.#openStream(this.#session);
        if (this.#stopped) return;
        if (end.code === StreamCloseCode.Replaced) {
          await this.#halt("replaced");
          return;
        }
        if (end.refusedStatus !== undefined) {
          this.#reportError(new StreamRefusedError(end.refusedStatus));
          if (REREGISTER_STATUSES.has(end.refusedStatus)) this.#session = undefined;
        }
        if (end.synced) this.#attempt = 0;
        await this.#backoff();
      }
    } catch (error) {
      const failure = error instanceof Error ? error : new Error(String(error));
      this.#reportError(failure);
      await this.#halt("failed", failure);
    }
  }

  #openStream(session: Session): Promise<StreamEnd> {
    return new Promise((resolve) => {
      const url = streamUrl(
        session.streamUrl,
        this.#options.coordinatorUrl,
        session.workerId,
        this.#table.version,
      );
      const socket = new WebSocket(url, {
        headers: { Authorization: `Bearer ${session.token}` },
        handshakeTimeout: this.#options.requestTimeoutMs,
      });
      this.#socket = socket;
      this.#awaitingSnapshot = false;
      this.#ackedOnStream = undefined;
      let opened = false;
      let synced = false;
      let refusedStatus: number | undefined;

      socket.on("unexpected-response", (_request, response) => {
        refusedStatus = response.statusCode;
        response.resume();
        socket.terminate();
      });
      socket.on("open", () => {
        opened = true;
        this.#watchLiveness(socket);
        this.#scheduleActivityFlush();
      });
      socket.on("ping", () => this.#watchLiveness(socket));
      socket.on("message", (data, isBinary) => {
        this.#watchLiveness(socket);
        if (this.#onMessage(socket, data, isBinary)) synced = true;
      });
      socket.on("error", (error) => {
        // A refused upgrade or our own stop() aborts the handshake: not news to anyone.
        if (refusedStatus === undefined && !this.#stopped) this.#reportError(error);
      });
      socket.on("close", (code, reason) => {
        if (this.#socket === socket) this.#socket = undefined;
        this.#clearLiveness();
        this.#clearActivityTimer();
        if (opened) this.emit("disconnected", { code, reason: reason.toString("utf8") });
        resolve({ code, refusedStatus, synced });
      });
    });
  }

  /** Handles one inbound message; true when it brought the table to a new acknowledged state. */
  #onMessage(socket: WebSocket, data: WebSocket.RawData, isBinary: boolean): boolean {
    if (isBinary) {
      this.#reportError(new StreamFrameError("binary frame ignored: the stream carries JSON text"));
      return false;
    }
    const result = parseCoordinatorFrame(rawDataText(data));
    if (result.kind === "ignored") return false;
    if (result.kind === "invalid") {
      this.#onInvalidFrame(socket, result);
      return false;
    }
    const frame = result.frame;
    switch (frame.type) {
      case "hello":
        this.#onHello(socket, frame);
        return false;
      case "snapshot":
        return this.#onSnapshot(socket, frame);
      case "diff":
        return this.#onDiff(socket, frame);
      case "error":
        this.#reportError(new CoordinatorStreamError(frame.code, frame.message));
        return false;
    }
  }

  #onHello(socket: WebSocket, hello: HelloFrame): void {
    if (hello.protocol !== STREAM_PROTOCOL) {
      this.#reportError(
        new StreamFrameError(
          `coordinator speaks stream protocol ${hello.protocol}, this client ${STREAM_PROTOCOL}`,
        ),
      );
    }
    this.#heartbeatIntervalS = hello.heartbeat_interval_s;
    this.#watchLiveness(socket);
    this.#takeAccessKeys(hello.access_keys);
    this.emit("connected", {
      workerId: this.#workerId ?? "",
      instanceId: hello.instance_id,
      protocol: hello.protocol,
      accessKeys: hello.access_keys ?? null,
    });
  }

  /** Keeps the newest key set and tells `accessKeys` listeners, before the answer's own event. */
  #takeAccessKeys(keys: AccessKeySet | undefined): void {
    if (keys === undefined) return;
    this.#accessKeys = keys;
    this.emit("accessKeys", keys);
  }

  #onSnapshot(socket: WebSocket, snapshot: SnapshotFrame): boolean {
    const outcome = this.#table.applySnapshot(snapshot.version, snapshot.routes, snapshot.digest);
    if (!outcome.applied) {
      const error = new TableMismatchError(outcome.mismatch);
      this.#send(socket, { type: "nack", version: snapshot.version, error: error.message });
      this.#reportError(error);
      return false;
    }
    this.#awaitingSnapshot = false;
    return this.#settle(socket, outcome, true);
  }

  #onDiff(socket: WebSocket, diff: DiffFrame): boolean {
    // Diffs sent before the coordinator saw our resync build on a table we refused.
    if (this.#awaitingSnapshot) return false;
    const outcome = this.#table.applyDiff(diff);
    if (!outcome.applied) {
      this.#requestSnapshot(socket, new TableMismatchError(outcome.mismatch));
      return false;
    }
    // An empty diff from the version this stream last acknowledged needs no ack (docs/stream.md):
    // the coordinator counts the worker at its `to` already, and a fleet answering each one would
    // cost it a frame per worker.
    const carriesChange = diff.upserts.length > 0 || diff.deletes.length > 0;
    return this.#settle(socket, outcome, carriesChange || this.#ackedOnStream !== diff.from);
  }

  #onInvalidFrame(
    socket: WebSocket,
    invalid: Extract<InboundFrameResult, { kind: "invalid" }>,
  ): void {
    const error = new StreamFrameError(invalid.reason);
    if (invalid.type === "diff" && this.#awaitingSnapshot) return;
    if (invalid.version !== undefined) {
      this.#send(socket, { type: "nack", version: invalid.version, error: invalid.reason });
    }
    // A diff we could not read leaves us behind; a snapshot asked for again would be the same.
    if (invalid.type === "diff") this.#requestSnapshot(socket, error);
    else this.#reportError(error);
  }

  #requestSnapshot(socket: WebSocket, cause: Error): void {
    this.#awaitingSnapshot = true;
    this.#send(socket, { type: "resync" });
    this.#reportError(cause);
  }

  /**
   * Serves and tells listeners, then acknowledges: an acknowledged version is a served one.
   * `acknowledge` is false for what needs no ack (an empty diff, see #onDiff).
   */
  #settle(
    socket: WebSocket,
    outcome: Extract<ApplyOutcome, { applied: true }>,
    acknowledge: boolean,
  ): boolean {
    let refusal: string | undefined;
    if (!isEmptyChange(outcome.change)) {
      refusal = this.#options.apply?.(outcome.change);
      this.emit("change", outcome.change);
    }
    if (refusal !== undefined) {
      this.#send(socket, { type: "nack", version: this.#table.version, error: refusal });
      this.#reportError(new RoutesRefusedError(refusal));
    } else {
      if (acknowledge) {
        this.#send(socket, { type: "ack", version: this.#table.version, digest: outcome.digest });
      }
      this.#ackedOnStream = this.#table.version;
    }
    this.emit("synced", {
      version: this.#table.version,
      digest: outcome.digest,
      routes: this.#table.size,
    });
    return true;
  }

  #send(socket: WebSocket, frame: WorkerFrame): boolean {
    if (socket.readyState !== WebSocket.OPEN) return false;
    socket.send(encodeWorkerFrame(frame));
    return true;
  }

  #watchLiveness(socket: WebSocket): void {
    const silenceMs = this.#heartbeatIntervalS * 1000 * LIVENESS_HEARTBEATS;
    // Every frame and ping lands here: restarting the running timer is cheaper than a new one.
    if (this.#livenessTimer !== undefined && this.#livenessSilenceMs === silenceMs) {
      this.#livenessTimer.refresh();
      return;
    }
    this.#clearLiveness();
    this.#livenessSilenceMs = silenceMs;
    this.#livenessTimer = setTimeout(() => {
      this.#livenessTimer = undefined;
      this.#reportError(new Error(`stream silent for ${silenceMs} ms; reconnecting`));
      socket.terminate();
    }, silenceMs);
  }

  #clearLiveness(): void {
    clearTimeout(this.#livenessTimer);
    this.#livenessTimer = undefined;
  }

  #scheduleActivityFlush(): void {
    const socket = this.#socket;
    if (this.#activityTimer !== undefined || this.#activity.size === 0) return;
    if (socket === undefined || socket.readyState !== WebSocket.OPEN) return;
    const due = this.#lastActivitySentAt + this.#options.activityIntervalMs - Date.now();
    this.#activityTimer = setTimeout(
      () => {
        this.#activityTimer = undefined;
        this.#flushActivity(socket);
      },
      Math.max(0, due),
    );
  }

  /**
   * Sends all pending activity, in as many frames as the coordinator's frame size limit asks for.
   * Entries leave the buffer only as their frame is sent: should the socket close mid-flush, the
   * rest waits for the next stream.
   */
  #flushActivity(socket: WebSocket): void {
    if (this.#activity.size === 0 || socket.readyState !== WebSocket.OPEN) return;
    while (this.#activity.size > 0 && socket.readyState === WebSocket.OPEN) {
      this.#send(socket, {
        type: "activity",
        routes: this.#activity.take(ACTIVITY_FRAME_BUDGET_BYTES, ACTIVITY_FRAME_MAX_ROUTES),
      });
    }
    this.#lastActivitySentAt = Date.now();
  }

  #clearActivityTimer(): void {
    clearTimeout(this.#activityTimer);
    this.#activityTimer = undefined;
  }

  #backoff(): Promise<void> {
    const delay = fullJitterDelay(
      this.#attempt,
      this.#options.reconnectMinMs,
      this.#options.reconnectMaxMs,
      this.#options.random,
    );
    this.#attempt += 1;
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(this.#backoffTimer);
        this.#backoffTimer = undefined;
        this.#wakeFromBackoff = undefined;
        resolve();
      };
      this.#wakeFromBackoff = wake;
      this.#backoffTimer = setTimeout(wake, delay);
    });
  }

  #halt(cause: StopCause, error?: Error): Promise<void> {
    this.#stopped = true;
    this.#stopPromise ??= this.#shutdown(cause, error);
    return this.#stopPromise;
  }

  async #shutdown(cause: StopCause, error: Error | undefined): Promise<void> {
    this.#registerAbort?.abort();
    this.#wakeFromBackoff?.();
    this.#clearLiveness();
    this.#clearActivityTimer();
    const socket = this.#socket;
    if (socket !== undefined) await this.#closeSocket(socket);
    this.emit("stopped", error === undefined ? { cause } : { cause, error });
  }

  async #closeSocket(socket: WebSocket): Promise<void> {
    if (socket.readyState === WebSocket.CLOSED) return;
    const closed = new Promise<void>((resolve) => socket.once("close", () => resolve()));
    if (socket.readyState === WebSocket.OPEN) {
      this.#flushActivity(socket);
      socket.close(StreamCloseCode.Normal, "worker stopping");
    } else if (socket.readyState === WebSocket.CONNECTING) {
      socket.terminate();
    }
    const cutOff = setTimeout(() => socket.terminate(), CLOSE_GRACE_MS);
    await closed;
    clearTimeout(cutOff);
  }

  /** Emits `error` only to listeners that asked for it (see the class comment). */
  #reportError(error: Error): void {
    if (this.listenerCount("error") > 0) this.emit("error", error);
  }
}

function rawDataText(data: WebSocket.RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}
