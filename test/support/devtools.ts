/**
 * A process started with `--inspect` is asked over the DevTools protocol (with the `ws` client)
 * to collect its garbage, then to evaluate `expression`: memory figures without the garbage that
 * happened to wait for the next collection. Used by the leak test and by the benchmarks.
 */
import WebSocket from "ws";

/**
 * Collects twice (what the first frees, finalizers and weak callbacks, may free more), waiting
 * `pauseMs` after each, then answers `expression`'s value. `inspectUrl`: http://host:port.
 */
export async function evaluateAfterGc<T>(
  inspectUrl: string,
  expression: string,
  pauseMs = 0,
): Promise<T> {
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
  const pause = () => new Promise((resolve) => setTimeout(resolve, pauseMs));
  try {
    for (let round = 0; round < 2; round++) {
      await call("HeapProfiler.collectGarbage");
      if (pauseMs > 0) await pause();
    }
    const answer = (await call("Runtime.evaluate", { expression, returnByValue: true })) as {
      result: { value: T };
    };
    return answer.result.value;
  } finally {
    socket.close();
  }
}
