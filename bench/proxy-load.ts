/**
 * The open-loop load generator of `bench:proxy`, in a process of its own (pinned by the bench
 * to the upstream's core, away from the proxy under test). Commands arrive over the IPC channel,
 * as in bench/sync-workers.ts: fixed-rate HTTP GETs, fixed-rate WebSocket echoes, and idle
 * WebSockets held open. Latencies are taken on process.hrtime and sent back raw, in ms.
 */
import http from "node:http";
import WebSocket from "ws";

type Command = (args: Record<string, unknown>) => Promise<unknown>;

const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

/**
 * Calls `send(i)` for i = 0… at `ratePerS`, each at its own time from the start whether or not
 * earlier ones have answered (a slow answer cannot hold back later requests and hide itself).
 * Timers fire at most once a millisecond, so the sends due in one millisecond go out together.
 */
function atFixedRate(ratePerS: number, durationMs: number, send: (i: number) => void) {
  const total = Math.floor((ratePerS * durationMs) / 1000);
  const start = nowMs();
  let next = 0;
  return new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((nowMs() - start) * ratePerS) / 1000) + 1);
      while (next < due) send(next++);
      if (next >= total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
}

/** Waits until `pending` reaches zero, or gives up after `timeoutMs`. */
async function drained(pending: () => number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (pending() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
}

const idle: WebSocket[] = [];

const commands: Record<string, Command> = {
  /** GET `url` at `rate`/s for `durationMs`; answers every latency and the failures. */
  async httpRate(args) {
    const url = new URL(args.url as string);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    const latencies: number[] = [];
    let failures = 0;
    let pending = 0;
    const get = (record: boolean) =>
      new Promise<void>((resolve) => {
        const sentAt = nowMs();
        pending++;
        const req = http.get({ agent, host: url.hostname, port: url.port, path: url.pathname });
        req.on("response", (res) => {
          res.resume();
          res.on("end", () => {
            pending--;
            if (res.statusCode !== 200) failures++;
            else if (record) latencies.push(nowMs() - sentAt);
            resolve();
          });
        });
        req.on("error", () => {
          pending--;
          failures++;
          resolve();
        });
      });
    // Warm the connections and the proxy's paths before anything is recorded.
    await atFixedRate(args.rate as number, 1000, () => void get(false));
    await drained(() => pending, 10_000);
    await atFixedRate(args.rate as number, args.durationMs as number, () => void get(true));
    await drained(() => pending, 10_000);
    agent.destroy();
    return { latencies, failures };
  },

  /**
   * Opens `connections` WebSockets to `url` and sends `size`-byte binary messages at `rate`/s in
   * all, round robin over them; answers every send → echo time and the messages lost.
   */
  async wsEcho(args) {
    const count = args.connections as number;
    const size = args.size as number;
    const sockets = await Promise.all(
      Array.from({ length: count }, () => openSocket(args.url as string)),
    );
    const latencies: number[] = [];
    let record = false;
    let pending = 0;
    // A socket's echoes come back in the order sent, so each keeps a queue of its send times.
    const queues = sockets.map((socket) => {
      const queue: number[] = [];
      socket.on("message", () => {
        const sentAt = queue.shift();
        pending--;
        if (record && sentAt !== undefined) latencies.push(nowMs() - sentAt);
      });
      return queue;
    });
    const payload = Buffer.alloc(size, "m");
    const send = (i: number) => {
      const at = i % count;
      queues[at]!.push(nowMs());
      pending++;
      sockets[at]!.send(payload, { binary: true });
    };
    await atFixedRate(args.rate as number, 1000, send);
    await drained(() => pending, 10_000);
    record = true;
    await atFixedRate(args.rate as number, args.durationMs as number, send);
    await drained(() => pending, 10_000);
    const lost = pending;
    for (const socket of sockets) socket.terminate();
    return { latencies, lost };
  },

  /** Opens `count` more WebSockets to `url`, `concurrency` at a time, and keeps them open. */
  async openIdle(args) {
    const count = args.count as number;
    let next = 0;
    let failures = 0;
    let lastError = "";
    await Promise.all(
      Array.from({ length: (args.concurrency as number | undefined) ?? 64 }, async () => {
        while (next < count) {
          next++;
          try {
            idle.push(await openSocket(args.url as string));
          } catch (error) {
            failures++;
            lastError = error instanceof Error ? error.message : String(error);
          }
        }
      }),
    );
    // One message each way on a few of them: the path is a live WebSocket, not a half-open one.
    for (const socket of idle.slice(-10)) await roundTrip(socket);
    return {
      open: idle.filter((s) => s.readyState === WebSocket.OPEN).length,
      failures,
      lastError,
    };
  },

  /** How many of the idle WebSockets are still open. */
  async idleOpen() {
    return idle.filter((s) => s.readyState === WebSocket.OPEN).length;
  },

  async closeIdle() {
    for (const socket of idle.splice(0)) socket.terminate();
    return null;
  },
};

function openSocket(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, { perMessageDeflate: false });
    socket.once("open", () => {
      socket.off("error", reject);
      socket.on("error", () => undefined);
      resolve(socket);
    });
    socket.once("error", reject);
  });
}

function roundTrip(socket: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("no echo within 10 s")), 10_000);
    socket.once("message", () => {
      clearTimeout(timer);
      resolve();
    });
    socket.send("ping");
  });
}

process.on("message", (raw) => {
  const { id, cmd, args } = raw as { id: number; cmd: string; args: Record<string, unknown> };
  void (async () => {
    try {
      const command = commands[cmd];
      if (!command) throw new Error(`unknown command ${cmd}`);
      process.send!({ id, ok: true, result: (await command(args)) ?? null });
    } catch (error) {
      process.send!({
        id,
        ok: false,
        error: error instanceof Error ? error.message : String(error),
      });
    }
  })();
});

// The bench process went away: nothing here may outlive it.
process.on("disconnect", () => process.exit(0));
