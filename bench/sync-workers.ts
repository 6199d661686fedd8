/**
 * The simulated workers, in a process of their own (started by bench/fleet.ts with
 * `node --import tsx`, commanded over IPC). Three kinds:
 * - WorkerClient instances of the project's client library, against the coordinator;
 * - bare `ws` sockets, against the bench's bare ws server (bench/ws-baseline.ts);
 * - etcd prefix watches over its HTTP gateway (bench/etcd-baseline.ts).
 * Each reports when a change tagged `labels.seq` (or `seq` in an etcd value) reached it, on the
 * monotonic clock shared with the bench process (support.ts nowMs).
 *
 * The WorkerClient does not expose its socket. To cut a stream abruptly (no close frame, as a
 * crash or a lost network would) and to tell whether a resumed stream began with a diff or a
 * snapshot, this process taps `ws`'s WebSocket.prototype.emit: every client socket is found by
 * the worker id in its URL, and the first frame after `hello` is classified by its type.
 */
import http from "node:http";
import WebSocket from "ws";
import { WorkerClient, type Route, type WorkerRegistration } from "../src/client/index.js";
import { watchPrefix, type EtcdWatch } from "./etcd-baseline.js";
import type { FleetMessage, FleetRequest } from "./fleet.js";
import { nowMs } from "./support.js";

type FrameKind = "snapshot" | "diff";

interface SimulatedWorker {
  name: string;
  registration: WorkerRegistration;
  client: WorkerClient;
  id: string | undefined;
  socket: WebSocket | undefined;
  /** Type of the first snapshot/diff on the current socket, once one arrived. */
  firstFrame: FrameKind | undefined;
  stopped: boolean;
  /** (version, time) of each `synced` since the last `mark`, for convergence times. */
  syncs: Array<[number, number]>;
  storm:
    | {
        phase: "dropped" | "reconnected" | "synced";
        reconnectedAt: number;
        syncedAt: number;
        frame?: FrameKind;
      }
    | undefined;
}

const workers = new Map<string, SimulatedWorker>();
const byId = new Map<string, SimulatedWorker>();
const syncWaiters = new Set<() => void>();
let clientErrors = 0;
let lastClientError = "";

// ---- receipts -------------------------------------------------------------------------------

let receiptBatch: Array<[number, number]> = [];
let receiptTimer: NodeJS.Timeout | undefined;

function receipt(seq: number, at: number): void {
  receiptBatch.push([seq, at]);
  receiptTimer ??= setTimeout(flushReceipts, 25);
}

function flushReceipts(): void {
  clearTimeout(receiptTimer);
  receiptTimer = undefined;
  if (receiptBatch.length === 0) return;
  const items = receiptBatch;
  receiptBatch = [];
  send({ event: "receipts", items });
}

function send(message: FleetMessage): void {
  process.send?.(message);
}

// ---- the tap on ws --------------------------------------------------------------------------

const STREAM_URL = /\/workers\/([0-9a-f-]{36})\/stream/;
const originalEmit = WebSocket.prototype.emit;
WebSocket.prototype.emit = function tappedEmit(
  this: WebSocket,
  event: string | symbol,
  ...args: unknown[]
): boolean {
  if (event === "open") {
    const id = STREAM_URL.exec(this.url)?.[1];
    const worker = id === undefined ? undefined : byId.get(id);
    if (worker) {
      worker.socket = this;
      worker.firstFrame = undefined;
    }
  } else if (event === "message") {
    const id = STREAM_URL.exec(this.url)?.[1];
    const worker = id === undefined ? undefined : byId.get(id);
    if (worker && worker.socket === this && worker.firstFrame === undefined) {
      const head = Buffer.isBuffer(args[0]) ? args[0].toString("latin1", 0, 24) : "";
      if (head.startsWith('{"type":"snapshot"')) worker.firstFrame = "snapshot";
      else if (head.startsWith('{"type":"diff"')) worker.firstFrame = "diff";
      if (worker.storm && worker.storm.phase !== "synced" && worker.firstFrame) {
        worker.storm.frame = worker.firstFrame;
      }
    }
  }
  return (originalEmit as (this: WebSocket, e: string | symbol, ...a: unknown[]) => boolean).call(
    this,
    event,
    ...args,
  );
} as typeof WebSocket.prototype.emit;

// ---- coordinator workers --------------------------------------------------------------------

interface RouteWatch {
  ids: Set<string>;
  exclude: string;
  holders: Set<string>;
  version: number;
  done(at: number): void;
}
let routeWatch: RouteWatch | undefined;

function checkRouteWatch(worker: SimulatedWorker, upserts: readonly Route[], at: number): void {
  const watch = routeWatch;
  if (!watch || worker.name === watch.exclude) return;
  for (const route of upserts) {
    if (!watch.ids.delete(route.id)) continue;
    watch.holders.add(worker.id!);
    watch.version = Math.max(watch.version, route.version);
  }
  if (watch.ids.size === 0) {
    routeWatch = undefined;
    watch.done(at);
  }
}

function createWorker(
  name: string,
  coordinatorUrl: string,
  registrationToken: string,
  portRange: [number, number],
): SimulatedWorker {
  const registration: WorkerRegistration = {
    name,
    advertised_host: "127.0.0.1",
    frontend_mode: "port",
    port_range: portRange,
  };
  const client = new WorkerClient({ coordinatorUrl, registrationToken, registration });
  const worker: SimulatedWorker = {
    name,
    registration,
    client,
    id: undefined,
    socket: undefined,
    firstFrame: undefined,
    stopped: false,
    syncs: [],
    storm: undefined,
  };
  client.on("registered", (e) => {
    worker.id = e.workerId;
    byId.set(e.workerId, worker);
  });
  client.on("change", (change) => {
    const at = nowMs();
    for (const route of change.upserts) {
      const seq = route.labels?.seq;
      if (seq !== undefined) receipt(Number(seq), at);
    }
    checkRouteWatch(worker, change.upserts, at);
  });
  client.on("connected", () => {
    if (worker.storm?.phase === "dropped") {
      worker.storm.phase = "reconnected";
      worker.storm.reconnectedAt = nowMs();
    }
  });
  client.on("synced", (e) => {
    const at = nowMs();
    if (worker.syncs.length < 100_000) worker.syncs.push([e.version, at]);
    if (worker.storm?.phase === "reconnected") {
      worker.storm.phase = "synced";
      worker.storm.syncedAt = at;
    }
    for (const wake of syncWaiters) wake();
  });
  client.on("error", (error) => {
    clientErrors += 1;
    lastClientError = error.message;
  });
  workers.set(name, worker);
  return worker;
}

/** Starts a worker and waits until its first table is applied and acknowledged. */
async function startWorker(worker: SimulatedWorker, timeoutMs: number): Promise<void> {
  const firstSync = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`${worker.name} did not sync within ${timeoutMs} ms`)),
      timeoutMs,
    );
    worker.client.once("synced", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await worker.client.start();
  await firstSync;
}

async function inBatches<T>(items: T[], concurrency: number, task: (item: T) => Promise<void>) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await task(items[next++]!);
    }),
  );
}

function activeWorkers(): SimulatedWorker[] {
  return [...workers.values()].filter((w) => !w.stopped);
}

/** Resolves when `condition` holds, re-checked after every `synced`; rejects at the deadline. */
function untilSynced(what: string, condition: () => boolean, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const finish = (error?: Error) => {
      syncWaiters.delete(check);
      clearTimeout(timer);
      if (error) reject(error);
      else resolve();
    };
    const check = () => {
      if (condition()) finish();
    };
    const timer = setTimeout(
      () => finish(new Error(`${what}: not reached within ${timeoutMs} ms`)),
      timeoutMs,
    );
    syncWaiters.add(check);
    check();
  });
}

// ---- bare ws and etcd receivers -------------------------------------------------------------

const wsSockets: WebSocket[] = [];
const etcdWatches: EtcdWatch[] = [];
const etcdAgent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

async function connectWs(url: string, count: number): Promise<void> {
  await inBatches(
    Array.from({ length: count }, (_, i) => i),
    50,
    (i) =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`${url}/?w=${i}`, { perMessageDeflate: false });
        wsSockets.push(ws);
        ws.once("open", () => resolve());
        ws.once("error", reject);
        ws.on("message", (data) => {
          const at = nowMs();
          const frame = JSON.parse(String(data)) as {
            to: number;
            upserts: Array<{ labels: { seq: string } }>;
          };
          const seq = Number(frame.upserts[0]!.labels.seq);
          receipt(seq, at);
          ws.send(JSON.stringify({ type: "ack", version: frame.to, seq }));
        });
      }),
  );
}

async function watchEtcd(url: string, count: number): Promise<void> {
  await inBatches(
    Array.from({ length: count }, (_, i) => i),
    50,
    async (i) => {
      const watch = watchPrefix(
        url,
        i,
        (value) => receipt((JSON.parse(value) as { seq: number }).seq, nowMs()),
        etcdAgent,
      );
      etcdWatches.push(watch);
      await watch.created;
    },
  );
}

// ---- commands -------------------------------------------------------------------------------

type Args = Record<string, unknown>;

const commands: Record<string, (args: Args) => Promise<unknown> | unknown> = {
  ping: () => ({ now: nowMs() }),

  flush: () => {
    flushReceipts();
    return null;
  },

  /** Registers and connects `count` workers named `<prefix>-<i>`, `concurrency` at a time. */
  async startClients(args) {
    const count = args.count as number;
    const list = Array.from({ length: count }, (_, i) =>
      createWorker(
        `${args.prefix as string}-${i}`,
        args.url as string,
        args.registrationToken as string,
        args.portRange as [number, number],
      ),
    );
    await inBatches(list, 32, (w) => startWorker(w, 120_000));
    return list.map((w) => ({ name: w.name, id: w.id! }));
  },

  /** Forgets the sync history: convergence times are then taken from here on. */
  mark() {
    for (const w of workers.values()) w.syncs = [];
    return null;
  },

  /**
   * Waits until every running worker's table is at `version` or later; answers when the last
   * one got there (from the sync history since `mark`).
   */
  async waitVersion(args) {
    const version = args.version as number;
    await untilSynced(
      `all workers at version ${version}`,
      () => activeWorkers().every((w) => w.client.table.version >= version),
      (args.timeoutMs as number | undefined) ?? 120_000,
    );
    let last = 0;
    for (const w of activeWorkers()) {
      const reached = w.syncs.find(([v]) => v >= version);
      last = Math.max(last, reached ? reached[1] : 0);
    }
    return { at: last };
  },

  /** Cuts every stream at once (no close frame) and waits until every worker synced again. */
  async storm(args) {
    const list = activeWorkers();
    const blind = list.filter((w) => w.socket === undefined).length;
    if (blind > 0) throw new Error(`${blind} workers' stream sockets were not found`);
    const t0 = nowMs();
    for (const w of list) {
      w.storm = { phase: "dropped", reconnectedAt: 0, syncedAt: 0 };
      w.socket?.terminate();
    }
    await untilSynced(
      "every worker synced after the storm",
      () => list.every((w) => w.storm?.phase === "synced"),
      (args.timeoutMs as number | undefined) ?? 120_000,
    );
    const result = {
      t0,
      reconnected: list.map((w) => w.storm!.reconnectedAt - t0),
      synced: list.map((w) => w.storm!.syncedAt - t0),
      diffs: list.filter((w) => w.storm!.frame === "diff").length,
      snapshots: list.filter((w) => w.storm!.frame === "snapshot").length,
    };
    for (const w of list) w.storm = undefined;
    return result;
  },

  /** Cuts one worker's stream without a close frame, then stops its client for good. */
  async kill(args) {
    const worker = workers.get(args.name as string);
    if (!worker) throw new Error(`no worker ${String(args.name)}`);
    const socket = worker.socket;
    if (!socket) throw new Error(`${worker.name}: its stream socket was not found`);
    const at = nowMs();
    const wall = Date.now();
    socket.terminate();
    worker.stopped = true;
    await worker.client.stop();
    return { at, wall };
  },

  /** Waits until every route in `ids` is in the table of a worker other than `exclude`. */
  async awaitRoutes(args) {
    const ids = new Set(args.ids as string[]);
    const exclude = args.exclude as string;
    const timeoutMs = (args.timeoutMs as number | undefined) ?? 60_000;
    return new Promise((resolve, reject) => {
      const watch: RouteWatch = {
        ids,
        exclude,
        holders: new Set(),
        version: 0,
        done: (at) => {
          clearTimeout(timer);
          resolve({ at, version: watch.version, holders: [...watch.holders] });
        },
      };
      const timer = setTimeout(() => {
        routeWatch = undefined;
        reject(new Error(`${ids.size} routes still not on another worker after ${timeoutMs} ms`));
      }, timeoutMs);
      routeWatch = watch;
      for (const w of activeWorkers()) {
        if (w.name === exclude) continue;
        const present = [...ids].map((id) => w.client.table.get(id)).filter((r) => r !== undefined);
        checkRouteWatch(w, present, nowMs());
      }
    });
  },

  /** Starts a new client under a stopped worker's name (the same identity comes back). */
  async restore(args) {
    const old = workers.get(args.name as string);
    if (!old) throw new Error(`no worker ${String(args.name)}`);
    if (old.id) byId.delete(old.id);
    const worker = createWorker(
      old.name,
      args.url as string,
      args.registrationToken as string,
      old.registration.port_range as [number, number],
    );
    await startWorker(worker, 60_000);
    return { name: worker.name, id: worker.id! };
  },

  async connectWs(args) {
    await connectWs(args.url as string, args.count as number);
    return null;
  },

  async watchEtcd(args) {
    await watchEtcd(args.url as string, args.count as number);
    return null;
  },

  stats: () => ({ clientErrors, lastClientError }),

  /** Stops every client (clean close) and drops every baseline socket and watch. */
  async stopAll() {
    await Promise.all([...workers.values()].map((w) => w.client.stop()));
    for (const ws of wsSockets.splice(0)) ws.terminate();
    for (const watch of etcdWatches.splice(0)) watch.close();
    etcdAgent.destroy();
    flushReceipts();
    return null;
  },
};

process.on("message", (raw) => {
  const request = raw as FleetRequest;
  const command = commands[request.cmd];
  void (async () => {
    try {
      if (!command) throw new Error(`unknown command ${request.cmd}`);
      const result = await command(request.args);
      send({ id: request.id, ok: true, result: result ?? null });
    } catch (error) {
      send({
        id: request.id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  })();
});

// The bench process went away: nothing here may outlive it.
process.on("disconnect", () => process.exit(0));
