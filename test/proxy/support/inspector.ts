/**
 * A child process started with `--inspect=<host>:<port>` is asked over the DevTools protocol
 * (with the `ws` client) to collect its garbage and tell its heap: figures without the garbage
 * that happened to wait for the next collection.
 */
import { readdirSync } from "node:fs";
import WebSocket from "ws";

export async function heapAfterGc(inspectUrl: string): Promise<number> {
  const res = await fetch(`${inspectUrl}/json/list`);
  const targets = (await res.json()) as Array<{ webSocketDebuggerUrl: string }>;
  const socket = new WebSocket(targets[0]!.webSocketDebuggerUrl, { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    socket.once("open", () => resolve());
    socket.once("error", reject);
  });
  let nextId = 1;
  const call = (method: string, params: Record<string, unknown> = {}) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      const onMessage = (data: WebSocket.RawData) => {
        const answer = JSON.parse(String(data)) as {
          id?: number;
          result?: unknown;
          error?: unknown;
        };
        if (answer.id !== id) return;
        socket.off("message", onMessage);
        if (answer.error) reject(new Error(`${method}: ${JSON.stringify(answer.error)}`));
        else resolve(answer.result);
      };
      socket.on("message", onMessage);
      socket.send(JSON.stringify({ id, method, params }));
    });
  try {
    // Twice: what the first collection frees (finalizers, weak callbacks) may free more.
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.collectGarbage");
    const answer = (await call("Runtime.evaluate", {
      expression: "process.memoryUsage().heapUsed",
      returnByValue: true,
    })) as { result: { value: number } };
    return answer.result.value;
  } finally {
    socket.close();
  }
}

/** The process's open file descriptors (sockets, listeners, files), from /proc. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
