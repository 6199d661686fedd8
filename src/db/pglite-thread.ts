import type { Worker } from "node:worker_threads";
import { siblingModule, startThread } from "../shared/thread-entry.js";
import {
  restoredError,
  type HostMessage,
  type HostRequest,
  type PGliteResult,
  type PortableQueryOptions,
} from "./pglite-protocol.js";

type Request = HostRequest extends infer R
  ? R extends { id: number }
    ? Omit<R, "id">
    : never
  : never;

const HOST = siblingModule(import.meta, "pglite-host");

/**
 * The embedded database, run on a thread of its own (pglite-host.ts) so that its queries never
 * hold up this thread's event loop. It offers what knex-pglite, ScriptSession and
 * NotificationListener use of a PGlite instance: query(), exec(), listen() and close(). Queries
 * go one at a time in the order asked, as on PGlite itself.
 *
 * The thread keeps the process alive only while an answer is awaited, as an open PGlite instance
 * (which holds no handle) did not keep it alive either.
 */
export class PGliteThread {
  private readonly pending = new Map<
    number,
    { resolve(value: unknown): void; reject(error: Error): void }
  >();
  private readonly listeners = new Map<number, (payload: string) => void>();
  private nextId = 1;
  private failure: Error | undefined;
  private closing: Promise<void> | undefined;
  /** Read by knex-pglite before each connection is handed out. */
  readonly waitReady: Promise<void>;

  private constructor(private readonly worker: Worker) {
    this.worker.unref();
    this.waitReady = new Promise<void>((resolve, reject) => {
      worker.on("message", (message: HostMessage) => {
        switch (message.kind) {
          case "ready":
            return resolve();
          case "failed":
            return reject(restoredError(message.error));
          case "notification":
            return this.listeners.get(message.listener)?.(message.payload);
          case "done":
            return this.settle(message.id, (w) => w.resolve(message.result));
          case "error":
            return this.settle(message.id, (w) => w.reject(restoredError(message.error)));
        }
      });
      worker.on("error", (error) => this.fail(error, reject));
      worker.on("exit", (code) =>
        this.fail(new Error(`PGlite is closed (its thread exited with ${code})`), reject),
      );
    });
  }

  /** Opens (or creates) the database in `dataDir` on a new thread; resolves once it answers. */
  static async open(dataDir: string): Promise<PGliteThread> {
    const worker = startThread(HOST, { workerData: { dataDir } });
    const thread = new PGliteThread(worker);
    try {
      await thread.waitReady;
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    return thread;
  }

  get closed(): boolean {
    return this.failure !== undefined;
  }

  query(sql: string, params?: unknown[], options?: object): Promise<PGliteResult> {
    return this.ask({
      op: "query",
      sql,
      params,
      options: portableOptions(options),
    }) as Promise<PGliteResult>;
  }

  exec(sql: string): Promise<PGliteResult[]> {
    return this.ask({ op: "exec", sql }) as Promise<PGliteResult[]>;
  }

  /** Like PGlite's listen(): `onPayload` for each NOTIFY on `channel`; resolves to the unlisten. */
  async listen(
    channel: string,
    onPayload: (payload: string) => void,
  ): Promise<() => Promise<void>> {
    const listener = this.nextId++;
    this.listeners.set(listener, onPayload);
    try {
      await this.ask({ op: "listen", channel, listener });
    } catch (error) {
      this.listeners.delete(listener);
      throw error;
    }
    return async () => {
      this.listeners.delete(listener);
      if (!this.closed) await this.ask({ op: "unlisten", listener });
    };
  }

  /** Closes the database (its files are then consistent) and ends the thread; twice is once. */
  close(): Promise<void> {
    return (this.closing ??= (async () => {
      if (!this.closed) await this.ask({ op: "close" }).catch(() => undefined);
      await this.worker.terminate();
    })());
  }

  private ask(request: Request): Promise<unknown> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ ...request, id } as HostRequest);
    });
  }

  private settle(
    id: number,
    how: (waiter: { resolve(v: unknown): void; reject(e: Error): void }) => void,
  ) {
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    if (this.pending.size === 0) this.worker.unref();
    how(waiter);
  }

  /** The thread is gone: every awaited answer fails, as does every later question. */
  private fail(error: Error, rejectReady: (error: Error) => void): void {
    this.failure ??= error;
    rejectReady(error);
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
  }
}

function portableOptions(options: object | undefined): PortableQueryOptions | undefined {
  if (!options) return undefined;
  const { rowMode, paramTypes } = options as PortableQueryOptions;
  if (rowMode === undefined && paramTypes === undefined) return undefined;
  return { ...(rowMode ? { rowMode } : {}), ...(paramTypes ? { paramTypes } : {}) };
}
