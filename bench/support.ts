import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import os from "node:os";
import pg from "pg";

export const BENCH_TOKENS = {
  MANAGER_TOKENS: "bench-manager-token-0123456789",
  REGISTRATION_TOKENS: "bench-registration-token-0123456789",
  ADMIN_TOKENS: "bench-admin-token-0123456789",
  TOKEN_SECRET: "bench-token-secret-0123456789-0123456789",
};

export const ADMIN_URL =
  process.env.BENCH_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A fresh database for one benchmark run, dropped by the returned function. */
export async function freshDatabase(name: string): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = new pg.Client({ connectionString: ADMIN_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new pg.Client({ connectionString: ADMIN_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/**
 * The Node flags `npm start` runs the coordinator with (package.json's start script, the words
 * before `--import`), so that benchmarks measure the process an operator runs.
 */
export const START_NODE_FLAGS: readonly string[] = (() => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  return words.slice(1, words.indexOf("--import")).filter((w) => w.startsWith("--"));
})();

/** Starts the real coordinator in its own process and waits until it is ready. */
export async function startCoordinatorProcess(
  env: Record<string, string>,
): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  // BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the coordinator.
  const nodeArgs = [
    ...START_NODE_FLAGS,
    ...(process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean),
  ];
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "src/main.ts"], {
    env: {
      ...process.env,
      ...BENCH_TOKENS,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", process.env.BENCH_CHILD_STDOUT ? "inherit" : "ignore", "inherit"],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`coordinator exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error("coordinator did not become ready");
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    child,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once("exit", () => resolve());
        child.kill("SIGTERM");
      }),
  };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** A bare keep-alive JSON request: less client overhead than fetch, so the server is measured. */
export function request(
  base: string,
  method: string,
  path: string,
  token: string,
  body?: unknown,
): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  const data = body === undefined ? undefined : JSON.stringify(body);
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname + url.search,
        method,
        headers: {
          authorization: `Bearer ${token}`,
          ...(data
            ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString(),
            headers: res.headers,
          }),
        );
      },
    );
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

/** Runs `total` tasks with `concurrency` in flight; returns tasks per second. */
export async function drive(
  total: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
) {
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < total) {
        const i = next++;
        await task(i);
      }
    }),
  );
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  return { seconds, perSecond: total / seconds };
}

export function machine(): string {
  const cpu = os.cpus()[0]?.model ?? "unknown cpu";
  return `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/**
 * Milliseconds on CLOCK_MONOTONIC (process.hrtime), which every process on one Linux machine
 * reads alike: times taken in the bench process and in the worker process can be subtracted.
 */
export function nowMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

export interface Summary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

export function summarize(values: number[]): Summary {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    n: sorted.length,
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
  };
}

/**
 * Open loop at a steady rate: task i starts at start + i / rate whether or not the earlier ones
 * have finished (a slow answer does not delay later requests, so it cannot hide its own cost).
 */
export async function paced(
  ratePerS: number,
  durationMs: number,
  task: (i: number) => Promise<void>,
): Promise<{ started: number; seconds: number }> {
  const total = Math.max(1, Math.floor((ratePerS * durationMs) / 1000));
  const start = nowMs();
  const running: Array<Promise<void>> = [];
  let failure: { error: unknown } | undefined;
  for (let i = 0; i < total && !failure; i++) {
    const wait = start + (i * 1000) / ratePerS - nowMs();
    if (wait >= 1) await sleep(wait);
    running.push(
      task(i).catch((error: unknown) => {
        failure ??= { error };
      }),
    );
  }
  const sendSeconds = (nowMs() - start) / 1000;
  await Promise.all(running);
  if (failure) throw failure.error;
  return { started: total, seconds: sendSeconds };
}

/** Closed loop: `concurrency` tasks in flight until `durationMs` has passed; returns tasks done. */
export async function driveFor(
  durationMs: number,
  concurrency: number,
  task: (i: number) => Promise<void>,
): Promise<{ done: number; seconds: number; perSecond: number }> {
  let next = 0;
  const start = nowMs();
  const end = start + durationMs;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (nowMs() < end) await task(next++);
    }),
  );
  const seconds = (nowMs() - start) / 1000;
  return { done: next, seconds, perSecond: next / seconds };
}

/** A process's resident memory in bytes, from /proc/<pid>/status (Linux). */
export async function residentBytes(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!kib) throw new Error(`no VmRSS for process ${pid}`);
  return Number(kib[1]) * 1024;
}

/** The value of one sample in Prometheus text, matched by name and a subset of its labels. */
export function metricSample(text: string, name: string, labels: Record<string, string> = {}) {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== "{" && line[name.length] !== " ")) {
      continue;
    }
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return 0;
}

/** CPU time (user + system) a process has used so far, in seconds, from /proc/<pid>/stat. */
export async function processCpuSeconds(pid: number): Promise<number> {
  const { readFile } = await import("node:fs/promises");
  const stat = await readFile(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The whole machine's CPU time so far, busy and total, in clock ticks, from /proc/stat. */
export async function machineCpuTicks(): Promise<{ busy: number; total: number }> {
  const { readFile } = await import("node:fs/promises");
  const line = (await readFile("/proc/stat", "utf8")).split("\n")[0]!;
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  const idle = ticks[3]! + ticks[4]!;
  return { busy: total - idle, total };
}

/** Math.max over an array of any length (spreading a long one overflows the stack); NaN wins. */
export function maxOf(values: number[]): number {
  let best = -Infinity;
  for (const v of values) best = Math.max(best, v);
  return best;
}

/** Math.min over an array of any length; NaN wins. */
export function minOf(values: number[]): number {
  let best = Infinity;
  for (const v of values) best = Math.min(best, v);
  return best;
}
