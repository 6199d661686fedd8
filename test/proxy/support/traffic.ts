/**
 * Steady user traffic through proxy workers while a test does harm elsewhere: `loops` requests
 * in flight round robin over `urls`, each over keep-alive connections, every answer checked.
 * A request fails when it errors, times out, or answers anything but 200 with the body the app
 * gives for that path.
 */
import http from "node:http";

export interface TrafficTally {
  ok: number;
  failed: number;
  /** The first few failures, to say what went wrong. */
  failures: string[];
}

export interface Traffic {
  readonly tally: TrafficTally;
  /** Resolves once at least `count` more requests have succeeded since the call. */
  progress(count: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<TrafficTally>;
}

export function startTraffic(
  urls: string[],
  options: { loops?: number; expect?: (url: string, body: string) => boolean } = {},
): Traffic {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const tally: TrafficTally = { ok: 0, failed: 0, failures: [] };
  const check = options.expect ?? ((url, body) => body === `app ${new URL(url).pathname}`);
  let running = true;
  let next = 0;
  const fail = (url: string, why: string) => {
    tally.failed++;
    if (tally.failures.length < 10) tally.failures.push(`${url}: ${why}`);
  };
  const once = (url: string) =>
    new Promise<void>((resolve) => {
      const req = http.get(url, { agent, timeout: 10_000 }, (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (body += chunk));
        res.on("end", () => {
          if (res.statusCode === 200 && check(url, body)) tally.ok++;
          else fail(url, `${res.statusCode} ${body.slice(0, 200)}`);
          resolve();
        });
        res.on("error", (error) => {
          fail(url, error.message);
          resolve();
        });
      });
      req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
      req.on("error", (error) => {
        fail(url, error.message);
        resolve();
      });
    });
  const loops = Array.from({ length: options.loops ?? 4 }, async () => {
    while (running) await once(urls[next++ % urls.length]!);
  });
  return {
    tally,
    progress: async (count, timeoutMs = 20_000) => {
      const target = tally.ok + count;
      const deadline = Date.now() + timeoutMs;
      while (tally.ok < target) {
        if (Date.now() > deadline) {
          throw new Error(`traffic stalled: ${JSON.stringify(tally)}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return tally;
    },
  };
}
