/**
 * `npm run bench:proxy`: the data plane against its peers on one machine in one run. The
 * upstream app and the load generator run in processes of their own on one core; each proxy
 * (the appproxy worker, nginx from Debian, configurable-http-proxy from npm) runs alone on the
 * other core in turn. A direct request to the upstream is the baseline latencies are added to.
 * Then the control plane's side: POST /routes → first 200 through the worker with many workers
 * connected, beside etcd's put → watcher receipt with as many watches, and the event-loop hold
 * of applying a 10,000-route snapshot.
 *
 * Settings: BENCH_PROXY_SECONDS (each closed-loop and fixed-rate phase, default 10),
 * BENCH_PROXY_IDLE (idle WebSockets, default 10,000 or what the open-file limit allows),
 * BENCH_PROXY_ONLY (comma-separated names of the proxies to run), BENCH_PROXY_FLEET (simulated
 * workers beside the real one, default 999), BENCH_PROXY_REACH_SAMPLES (default 200),
 * BENCH_PROXY_SNAPSHOT_ROUTES (default 10,000), BENCH_SKIP_ETCD=1 (no etcd),
 * BENCH_PROXY_PROFILE_DIR (CPU profiles of the worker's threads go there); PostgreSQL at BENCH_DATABASE_URL as the other
 * benches.
 */
import { spawnSync } from "node:child_process";
import os from "node:os";
import { runBenchmark } from "./cleanup.js";
import {
  idleWebSockets,
  fixedRate,
  throughput,
  wsEcho,
  type IdleMemory,
  type RateResult,
  type Target,
  type Throughput,
} from "./proxy-measure.js";
import {
  CHP_VERSION,
  LOAD_CORE,
  PROXY_CORE,
  startChp,
  startLoadGenerator,
  startNginx,
  startUpstream,
  type Started,
} from "./proxy-processes.js";
import { machine } from "./support.js";
import { startCoordinator, useFreshDatabase } from "./harness.js";
import { snapshotHold, timeToReachable } from "./proxy-control.js";
import { etcdSentToReceipt } from "./proxy-etcd.js";
import { publicRoute, startWorkerProcess, type WorkerProcess } from "./proxy-worker.js";

const SECONDS = Number(process.env.BENCH_PROXY_SECONDS ?? 10);
const IN_FLIGHT = 16;
const HTTP_RATE = 1000;
const WS = { rate: 1000, connections: 100, size: 64 };

/**
 * A proxied WebSocket holds two descriptors in the proxy (client and upstream side); the
 * machine's open-file limit (which this process cannot raise) caps how many one process holds.
 */
function idleCount(): number {
  if (process.env.BENCH_PROXY_IDLE) return Number(process.env.BENCH_PROXY_IDLE);
  const limit = Number(spawnSync("sh", ["-c", "ulimit -n"], { encoding: "utf8" }).stdout.trim());
  return Math.min(10_000, Math.floor((limit - 500) / 2));
}

interface Proxy {
  name: string;
  start(upstreamPort: number): Promise<Started & { port: number; host?: string }>;
}

let coordinatorUrl = "";
/** The worker of the data-plane phases, kept for time to reachable. */
let benchWorker: WorkerProcess | undefined;

async function startBenchWorker(upstreamPort: number) {
  const worker = await startWorkerProcess(coordinatorUrl, {
    FRONTEND_MODE: "port",
    PORT_RANGE: `${WORKER_PORTS[0]}:${WORKER_PORTS[1]}`,
  });
  benchWorker = worker;
  await publicRoute(coordinatorUrl, worker, WORKER_PORTS[0], upstreamPort);
  return { pid: worker.pid, port: WORKER_PORTS[0], host: worker.host, stop: async () => undefined };
}

/** The worker's port range: one port for the data-plane route, the rest for time to reachable. */
const WORKER_PORTS: [number, number] = [20000, 20031];

const PROXIES: Proxy[] = [
  { name: "appproxy worker", start: startBenchWorker },
  { name: "nginx 1.22", start: startNginx },
  { name: `configurable-http-proxy ${CHP_VERSION}`, start: startChp },
];

interface Row {
  name: string;
  throughput: Throughput;
  latency: RateResult;
  directLatency: RateResult;
  echo: RateResult;
  directEcho: RateResult;
  idle: IdleMemory;
}

const ms = (v: number) => v.toFixed(3);
const added = (a: number, b: number) => `${a - b >= 0 ? "+" : ""}${(a - b).toFixed(3)}`;

function table(rows: Row[], direct: Throughput, idleTarget: number): string {
  const header = ["measurement", "direct (no proxy)", ...rows.map((r) => r.name)];
  const lines: string[][] = [
    header,
    [
      `GET 1 KiB, ${IN_FLIGHT} in flight (wrk): requests/s`,
      Math.round(direct.perSecond).toLocaleString("en-US"),
      ...rows.map((r) => Math.round(r.throughput.perSecond).toLocaleString("en-US")),
    ],
    [
      "… proxy CPU per request, µs",
      "—",
      ...rows.map((r) => (r.throughput.cpuUsPerRequest ?? NaN).toFixed(1)),
    ],
    [
      `GET at ${HTTP_RATE}/s: latency p50 / p99, ms (direct: the run beside each proxy's)`,
      rows
        .map((r) => `${ms(r.directLatency.summary.p50)} / ${ms(r.directLatency.summary.p99)}`)
        .join(", "),
      ...rows.map((r) => `${ms(r.latency.summary.p50)} / ${ms(r.latency.summary.p99)}`),
    ],
    [
      "… added over direct, p50 / p99, ms",
      "—",
      ...rows.map(
        (r) =>
          `${added(r.latency.summary.p50, r.directLatency.summary.p50)} / ${added(r.latency.summary.p99, r.directLatency.summary.p99)}`,
      ),
    ],
    [
      `WebSocket echo ${WS.size} B at ${WS.rate} msg/s over ${WS.connections}: p50 / p99, ms`,
      rows
        .map((r) => `${ms(r.directEcho.summary.p50)} / ${ms(r.directEcho.summary.p99)}`)
        .join(", "),
      ...rows.map((r) => `${ms(r.echo.summary.p50)} / ${ms(r.echo.summary.p99)}`),
    ],
    [
      "… added over direct, p50 / p99, ms",
      "—",
      ...rows.map(
        (r) =>
          `${added(r.echo.summary.p50, r.directEcho.summary.p50)} / ${added(r.echo.summary.p99, r.directEcho.summary.p99)}`,
      ),
    ],
    [
      "failed requests / lost messages (all phases)",
      "—",
      ...rows.map(
        (r) =>
          `${r.latency.failures + r.directLatency.failures} / ${r.echo.failures + r.directEcho.failures}${r.throughput.errors ? ` (wrk: ${r.throughput.errors})` : ""}`,
      ),
    ],
    [
      `${idleTarget.toLocaleString("en-US")} idle WebSockets: proxy RSS per connection, KiB`,
      "—",
      ...rows.map(
        (r) =>
          `${(r.idle.bytesPerConnection / 1024).toFixed(1)} (${r.idle.opened.toLocaleString("en-US")} open, RSS ${(r.idle.rssBefore / 2 ** 20).toFixed(0)} → ${(r.idle.rssAfter / 2 ** 20).toFixed(0)} MiB)`,
      ),
    ],
  ];
  const widths = header.map((_, c) => Math.max(...lines.map((l) => (l[c] ?? "").length)));
  const format = (l: string[]) =>
    `| ${l.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ")} |`;
  return [
    format(header),
    `| ${widths.map((w, c) => (c === 0 ? "-".repeat(w) : `${"-".repeat(w - 1)}:`)).join(" | ")} |`,
    ...lines.slice(1).map(format),
  ].join("\n");
}

async function main(): Promise<void> {
  const only = process.env.BENCH_PROXY_ONLY?.split(",");
  const proxies = PROXIES.filter((p) => !only || only.some((o) => p.name.startsWith(o)));
  const idleTarget = idleCount();
  console.log(`bench:proxy on ${machine()}`);
  console.log(
    `proxy on core ${PROXY_CORE}; upstream, load generator and wrk on core ${LOAD_CORE}; phases of ${SECONDS} s; load average at start ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  const db = await useFreshDatabase("appproxy_bench_proxy");
  const coordinator = await startCoordinator({
    DATABASE_URL: db.url,
    WORKER_LOST_AFTER_S: "86400",
  });
  coordinatorUrl = coordinator.url;
  const upstream = await startUpstream();
  const load = await startLoadGenerator();
  const directTarget: Target = {
    name: "direct",
    host: "127.0.0.1",
    port: upstream.port,
    pid: undefined,
  };
  const direct = await throughput(directTarget, IN_FLIGHT, SECONDS);
  console.error(`direct: ${Math.round(direct.perSecond)} requests/s`);

  const rows: Row[] = [];
  for (const proxy of proxies) {
    const started = await proxy.start(upstream.port);
    const target = {
      name: proxy.name,
      host: started.host ?? "127.0.0.1",
      port: started.port,
      pid: started.pid,
    };
    // A short run first: connection pools filled, code paths compiled.
    await throughput(target, IN_FLIGHT, 2);
    const tp = await throughput(target, IN_FLIGHT, SECONDS);
    console.error(`${proxy.name}: ${Math.round(tp.perSecond)} requests/s`);
    const directLatency = await fixedRate(load, directTarget, HTTP_RATE, SECONDS * 1000);
    const latency = await fixedRate(load, target, HTTP_RATE, SECONDS * 1000);
    const echoOptions = { ...WS, durationMs: SECONDS * 1000 };
    const directEcho = await wsEcho(load, directTarget, echoOptions);
    const echo = await wsEcho(load, target, echoOptions);
    const idle = await idleWebSockets(load, target, idleTarget);
    await started.stop();
    rows.push({ name: proxy.name, throughput: tp, latency, directLatency, echo, directEcho, idle });
  }
  const control: string[] = [];
  if (benchWorker) {
    const fleetSize = Number(process.env.BENCH_PROXY_FLEET ?? 999);
    const reach = await timeToReachable(
      coordinatorUrl,
      benchWorker,
      [WORKER_PORTS[0] + 1, WORKER_PORTS[1]],
      upstream.port,
      fleetSize,
      Number(process.env.BENCH_PROXY_REACH_SAMPLES ?? 200),
    );
    await benchWorker.stop();
    control.push(
      `time to reachable (POST /routes sent → first 200 through the worker), ${reach.workers} workers connected, ${reach.summary.n} routes one after another: p50 ${reach.summary.p50.toFixed(2)} ms, p99 ${reach.summary.p99.toFixed(2)} ms, max ${reach.summary.max.toFixed(2)} ms`,
    );
    if (process.env.BENCH_SKIP_ETCD !== "1") {
      const etcd = await etcdSentToReceipt(reach.workers, reach.summary.n);
      control.push(
        `beside it, etcd ${etcd.version} with ${reach.workers} watches: put sent → the watcher has it, ${etcd.summary.n} puts one after another: p50 ${etcd.summary.p50.toFixed(2)} ms, p99 ${etcd.summary.p99.toFixed(2)} ms, max ${etcd.summary.max.toFixed(2)} ms`,
      );
    }
    const snapshotRoutes = Number(process.env.BENCH_PROXY_SNAPSHOT_ROUTES ?? 10_000);
    const snapshot = snapshotRoutes >= 2 ? await snapshotHold(snapshotRoutes) : undefined;
    if (snapshot)
      control.push(
        `applying a ${snapshot.routes.toLocaleString("en-US")}-route snapshot (${snapshot.snapshots} snapshot frame sent): longest event-loop hold ${snapshot.loopMaxMs.toFixed(1)} ms (p99 of 1 ms waits ${snapshot.loopP99Ms.toFixed(1)} ms; while starting ${snapshot.startupLoopMaxMs.toFixed(1)} ms) (longest 1 ms timer gap ${snapshot.longestTimerGapMs.toFixed(1)} ms), index applies ${(snapshot.applySecondsSum * 1000).toFixed(1)} ms in ${snapshot.applyCount} (appproxy_worker_apply_seconds), start → serving ${snapshot.servedAfterMs.toFixed(0)} ms`,
      );
  }
  console.log(
    `load average at end ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(" ")}`,
  );
  console.log("");
  console.log(table(rows, direct, idleTarget));
  console.log("");
  for (const line of control) console.log(`- ${line}`);
}

await runBenchmark(main);
