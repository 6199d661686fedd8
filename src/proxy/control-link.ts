import { EventEmitter } from "node:events";
import { MessageChannel, type Worker } from "node:worker_threads";
import { siblingModule, startThread } from "../shared/thread-entry.js";
import type {
  ChangeAnswer,
  ControlCommand,
  ControlEvent,
  ControlThreadData,
} from "./control-protocol.js";
import type { IndexUpdate, PreparedRoute, ServingIndex } from "./route-index.js";

/** At most this many refused routes are named in one nack. */
const NACK_ROUTES_NAMED = 5;
/** How long stop() waits for the control thread to close the stream and keep the state. */
const CLOSE_TIMEOUT_MS = 10_000;

const CONTROL_THREAD = siblingModule(import.meta, "control-thread");

type EventOf<T extends ControlEvent["type"]> = Omit<Extract<ControlEvent, { type: T }>, "type">;

export interface ControlLinkEvents {
  registered: [EventOf<"registered">];
  connected: [EventOf<"connected">];
  disconnected: [EventOf<"disconnected">];
  accessKeys: [EventOf<"accessKeys">["keys"]];
  warning: [string];
  /** The client stopped for good (a refused registration, a failure), or the thread died. */
  stopped: [EventOf<"stopped">];
  /** A change was put in force; `seconds` is this thread's time spent taking it in. */
  change: [IndexUpdate, number];
}

export type ControlLinkSettings = Omit<ControlThreadData, "taken" | "answers">;

/**
 * The data plane's side of the control thread: it takes each table change in slice by slice,
 * preparing the routes of one slice per turn of the event loop, puts the change in force on the
 * index in one turn, and tells the control thread, which then acknowledges it. Listeners are to
 * be attached before `kept` is awaited.
 */
export class ControlLink extends EventEmitter<ControlLinkEvents> {
  /** What DATA_DIR held (its table is in force when this resolves), or null. */
  readonly kept: Promise<EventOf<"kept">["state"]>;
  readonly #thread: Worker;
  readonly #taken = new Int32Array(new SharedArrayBuffer(4));
  readonly #answers = new MessageChannel();
  #prepared: PreparedRoute[] = [];
  #stopping = false;
  #lostTold = false;
  #busyMs = 0;
  #closed: Promise<void>;

  constructor(
    private readonly index: ServingIndex,
    settings: ControlLinkSettings,
  ) {
    super();
    const data: ControlThreadData = {
      ...settings,
      taken: this.#taken.buffer as SharedArrayBuffer,
      answers: this.#answers.port2,
    };
    this.#thread = startThread(CONTROL_THREAD, {
      workerData: data,
      transferList: [this.#answers.port2],
    });
    let keep!: (state: EventOf<"kept">["state"]) => void;
    let fail!: (error: Error) => void;
    this.kept = new Promise((resolve, reject) => {
      keep = resolve;
      fail = reject;
    });
    this.#thread.on("message", (event: ControlEvent) => {
      if (event.type === "kept") keep(event.state);
      else this.#onEvent(event);
    });
    this.#thread.on("error", (error) => {
      fail(error);
      this.#lost(`control thread failed: ${error.message}`);
    });
    this.#closed = new Promise((resolve) => this.#thread.once("exit", () => resolve()));
    this.#thread.once("exit", (code) => {
      fail(new Error(`control thread exited with ${code} before it started`));
      this.#answers.port1.close();
      if (!this.#stopping) this.#lost(`control thread exited with ${code}`);
    });
  }

  /** Routes that moved bytes: the control thread sends them in `activity` frames. */
  reportActivity(routeId: string, at: number): void {
    this.#command({ type: "activity", routeId, at });
  }

  /** Closes the stream, keeps the state in DATA_DIR and ends the thread. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#command({ type: "stop" });
    const timer = setTimeout(() => void this.#thread.terminate(), CLOSE_TIMEOUT_MS);
    await this.#closed;
    clearTimeout(timer);
  }

  /** Tells listeners once that the control thread is gone: the table can no longer change. */
  #lost(error: string): void {
    if (this.#lostTold) return;
    this.#lostTold = true;
    this.emit("stopped", { cause: "failed", error });
  }

  #command(command: ControlCommand): void {
    this.#thread.postMessage(command);
  }

  #onEvent(event: Exclude<ControlEvent, { type: "kept" }>): void {
    switch (event.type) {
      case "upserts": {
        const started = performance.now();
        for (const prepared of this.index.prepare(event.routes)) this.#prepared.push(prepared);
        this.#busyMs += performance.now() - started;
        this.#tookIn();
        return;
      }
      case "commit": {
        const started = performance.now();
        const update = this.index.commit(event.version, this.#prepared, event.deletes);
        this.#prepared = [];
        const seconds = (this.#busyMs + performance.now() - started) / 1000;
        this.#busyMs = 0;
        const answer: ChangeAnswer = { refusal: refusalText(update.refused) };
        this.#answers.port1.postMessage(answer);
        this.#tookIn();
        this.emit("change", update, seconds);
        return;
      }
      case "registered":
      case "connected":
      case "disconnected":
      case "stopped": {
        const { type, ...rest } = event;
        this.emit(type, rest as never);
        return;
      }
      case "accessKeys":
        this.emit("accessKeys", event.keys);
        return;
      case "warning":
        this.emit("warning", event.message);
        return;
      case "closed":
        return;
    }
  }

  /**
   * Lets the control thread hand over the next slice, once this turn of the event loop is over:
   * told at once, it would post the next slice while this thread still drains its message queue,
   * and every slice would be taken in within one turn, holding requests up as one big change did.
   */
  #tookIn(): void {
    setImmediate(() => {
      Atomics.add(this.#taken, 0, 1);
      Atomics.notify(this.#taken, 0);
    });
  }
}

function refusalText(refused: IndexUpdate["refused"]): string | undefined {
  if (refused.length === 0) return undefined;
  const named = refused
    .slice(0, NACK_ROUTES_NAMED)
    .map(({ id, reason }) => `${id}: ${reason}`)
    .join("; ");
  const more = refused.length - NACK_ROUTES_NAMED;
  return `routes not served: ${named}${more > 0 ? `; and ${more} more` : ""}`;
}
