/**
 * The measurements of `bench:proxy` against one target (a proxy, or the upstream directly):
 * closed-loop throughput with wrk, open-loop latency and WebSocket echo through the load
 * generator, and resident memory per idle WebSocket.
 */
import { spawn } from "node:child_process";
import { ensureDebianPackage } from "./debian-package.js";
import { LOAD_CORE, processTree, type LoadGenerator } from "./proxy-processes.js";
import { processCpuSeconds, residentBytes, sleep, summarize, type Summary } from "./support.js";

export interface Target {
  name: string;
  host: string;
  port: number;
  /** The proxy's process (undefined for the direct baseline, which has no proxy). */
  pid: number | undefined;
}

/** CPU seconds used so far by a process and its descendants. */
async function treeCpuSeconds(pid: number): Promise<number> {
  let total = 0;
  for (const p of processTree(pid)) total += await processCpuSeconds(p).catch(() => 0);
  return total;
}

export interface Throughput {
  perSecond: number;
  /** The proxy's CPU per request, µs (undefined for the direct baseline). */
  cpuUsPerRequest: number | undefined;
  errors: string;
}

/** wrk with one thread and `connections` in flight for `seconds`, GET / (1 KiB answers). */
export async function throughput(
  target: Target,
  connections: number,
  seconds: number,
): Promise<Throughput> {
  ensureDebianPackage("/usr/bin/wrk", "wrk");
  const cpuBefore = target.pid ? await treeCpuSeconds(target.pid) : 0;
  const output = await new Promise<string>((resolve, reject) => {
    const wrk = spawn("taskset", [
      "-c",
      LOAD_CORE,
      "wrk",
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      `http://${target.host}:${target.port}/`,
    ]);
    let text = "";
    wrk.stdout.on("data", (chunk: Buffer) => (text += chunk.toString()));
    wrk.stderr.on("data", (chunk: Buffer) => (text += chunk.toString()));
    wrk.once("error", reject);
    wrk.once("exit", (code) =>
      code === 0 ? resolve(text) : reject(new Error(`wrk exited with ${code}: ${text}`)),
    );
  });
  const cpuAfter = target.pid ? await treeCpuSeconds(target.pid) : 0;
  const total = /(\d+) requests in/.exec(output);
  const rate = /Requests\/sec:\s+([\d.]+)/.exec(output);
  if (!total || !rate) throw new Error(`unexpected wrk output: ${output}`);
  const errors = [/Socket errors:.*/.exec(output)?.[0], /Non-2xx.*/.exec(output)?.[0]]
    .filter(Boolean)
    .join("; ");
  return {
    perSecond: Number(rate[1]),
    cpuUsPerRequest: target.pid ? ((cpuAfter - cpuBefore) * 1e6) / Number(total[1]) : undefined,
    errors,
  };
}

export interface RateResult {
  summary: Summary;
  failures: number;
}

/** GET / at a fixed rate from the load generator; every answer's latency, ms. */
export async function fixedRate(
  load: LoadGenerator,
  target: Target,
  rate: number,
  durationMs: number,
): Promise<RateResult> {
  const { latencies, failures } = await load.call<{ latencies: number[]; failures: number }>(
    "httpRate",
    { url: `http://${target.host}:${target.port}/`, rate, durationMs },
  );
  return { summary: summarize(latencies), failures };
}

/** WebSocket echo of `size`-byte messages at `rate`/s over `connections`; send → echo, ms. */
export async function wsEcho(
  load: LoadGenerator,
  target: Target,
  options: { rate: number; connections: number; size: number; durationMs: number },
): Promise<RateResult> {
  const { latencies, lost } = await load.call<{ latencies: number[]; lost: number }>("wsEcho", {
    url: `ws://${target.host}:${target.port}/`,
    ...options,
  });
  return { summary: summarize(latencies), failures: lost };
}

export interface IdleMemory {
  opened: number;
  failures: number;
  rssBefore: number;
  rssAfter: number;
  bytesPerConnection: number;
}

/**
 * Resident memory of the proxy (with its descendants) before and after `count` idle WebSockets
 * through it, read after a settle so that lazily freed buffers are not counted.
 */
export async function idleWebSockets(
  load: LoadGenerator,
  target: Target & { pid: number },
  count: number,
): Promise<IdleMemory> {
  const rss = async () => {
    let total = 0;
    for (const p of processTree(target.pid)) total += await residentBytes(p).catch(() => 0);
    return total;
  };
  await sleep(2000);
  const rssBefore = await rss();
  const opened = await load.call<{ open: number; failures: number; lastError: string }>(
    "openIdle",
    { url: `ws://${target.host}:${target.port}/`, count },
  );
  await sleep(3000);
  const rssAfter = await rss();
  const stillOpen = await load.call<number>("idleOpen");
  await load.call("closeIdle");
  if (opened.failures > 0)
    console.error(`${target.name}: ${opened.failures} idle WebSockets failed: ${opened.lastError}`);
  return {
    opened: stillOpen,
    failures: opened.failures + (opened.open - stillOpen),
    rssBefore,
    rssAfter,
    bytesPerConnection: (rssAfter - rssBefore) / Math.max(1, stillOpen),
  };
}
