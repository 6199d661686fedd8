/**
 * The bench process's handle on the simulated workers, which run in a process of their own
 * (bench/sync-workers.ts) so that their CPU is not the bench's or the coordinator's. Commands go
 * over the IPC channel; receipts (which change reached which worker, and when, on the shared
 * monotonic clock of bench/support.ts nowMs) come back in batches.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { deferCleanup } from "./cleanup.js";
import { sleep } from "./support.js";

/** Parent to child. */
export interface FleetRequest {
  id: number;
  cmd: string;
  args: Record<string, unknown>;
}

/** Child to parent: an answer to a request, or a batch of receipts. */
export type FleetMessage =
  | { id: number; ok: true; result: unknown }
  | { id: number; ok: false; error: string }
  | { event: "receipts"; items: Array<[seq: number, at: number]> };

export interface WorkerRef {
  name: string;
  id: string;
}

export interface Fleet {
  readonly pid: number;
  /** seq → when a worker first received the change tagged with it. */
  readonly receipts: Map<number, number>;
  call<T>(cmd: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  /** Waits until every seq has a receipt; returns how many are still missing at the deadline. */
  awaitReceipts(seqs: Iterable<number>, timeoutMs: number): Promise<number>;
  stop(): Promise<void>;
}

const CHILD = fileURLToPath(new URL("./sync-workers.ts", import.meta.url));

export async function startFleet(): Promise<Fleet> {
  const child = spawn(process.execPath, ["--import", "tsx", CHILD], {
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const receipts = new Map<number, number>();
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 1;

  child.on("message", (raw) => {
    const message = raw as FleetMessage;
    if ("event" in message) {
      for (const [seq, at] of message.items) if (!receipts.has(seq)) receipts.set(seq, at);
      return;
    }
    const waiter = waiting.get(message.id);
    if (!waiter) return;
    waiting.delete(message.id);
    if (message.ok) waiter.resolve(message.result);
    else waiter.reject(new Error(message.error));
  });
  child.once("exit", (code, signal) => {
    for (const w of waiting.values()) {
      w.reject(new Error(`worker process exited (${code ?? signal})`));
    }
    waiting.clear();
  });

  const call = <T>(cmd: string, args: Record<string, unknown> = {}, timeoutMs = 300_000) =>
    new Promise<T>((resolve, reject) => {
      if (!child.connected) return reject(new Error("worker process is not running"));
      const id = nextId++;
      const timer = setTimeout(() => {
        waiting.delete(id);
        reject(new Error(`worker process: ${cmd} timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v as T);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      child.send({ id, cmd, args } satisfies FleetRequest);
    });

  const stop = deferCleanup("worker process", async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    try {
      await call("stopAll", {}, 20_000);
    } catch {
      // it is killed below anyway
    }
    if (child.connected) child.disconnect();
    const killer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(killer);
  });

  await call("ping", {}, 60_000);
  return {
    pid: child.pid!,
    receipts,
    call,
    async awaitReceipts(seqs, timeoutMs) {
      const wanted = [...seqs];
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        await call("flush");
        const missing = wanted.filter((s) => !receipts.has(s)).length;
        if (missing === 0 || Date.now() > deadline) return missing;
        await sleep(50);
      }
    },
    stop,
  };
}
