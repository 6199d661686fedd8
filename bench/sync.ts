/**
 * npm run bench:sync — how fast a routing change reaches the workers' tables, against the real
 * coordinator (its own process, a fresh PostgreSQL database) and WorkerClient workers (another
 * process, bench/sync-workers.ts), next to a bare `ws` server and to etcd 3.4 watches doing the
 * same deliveries. Prints Markdown tables.
 *
 * Times: bench and worker process both read CLOCK_MONOTONIC (process.hrtime, support.ts nowMs),
 * which on one Linux machine is the same clock in every process, at nanosecond resolution and
 * immune to wall-clock steps; a receipt time taken in the worker process minus a send time taken
 * here is a latency. The script checks at start that the worker process's reading falls inside
 * an IPC round trip of the bench's.
 *
 * Settings: BENCH_QUICK=1 (N=100 only, 3 s phases), BENCH_SYNC_SIZES=100,1000,
 * BENCH_PHASE_S=20, BENCH_SKIP_ETCD=1, BENCH_SKIP_WS=1. BENCH_SYNC_MODE=databases runs instead
 * the embedded database beside PostgreSQL (bench/sync-databases.ts); BENCH_SYNC_MODE=idle what
 * an idle connected fleet costs (bench/sync-idle.ts).
 */
import { randomUUID } from "node:crypto";
import os from "node:os";
import { runBenchmark } from "./cleanup.js";
import { ensureEtcd, etcdPut, etcdVersion, startEtcd } from "./etcd-baseline.js";
import { startFleet, type Fleet, type WorkerRef } from "./fleet.js";
import { runDatabaseComparison } from "./sync-databases.js";
import { runIdleFleet } from "./sync-idle.js";
import {
  ADMIN,
  MANAGER,
  REGISTRATION,
  headVersion,
  memoryAfterGc,
  mutate,
  startCoordinator,
  useFreshDatabase,
  type BenchDatabase,
  type ProcessMemory,
} from "./harness.js";
import {
  drive,
  driveFor,
  machine,
  metricSample,
  nowMs,
  machineCpuTicks,
  paced,
  processCpuSeconds,
  request,
  residentBytes,
  sleep,
  summarize,
  type Summary,
  maxOf,
  minOf,
} from "./support.js";
import { sampleWaits, type WaitShares } from "./pg-waits.js";
import { gcBetween, stagesBetween, type BucketSummary } from "./stage-histograms.js";
import { sampleRoute, startWsBaseline } from "./ws-baseline.js";

const QUICK = process.env.BENCH_QUICK === "1";
const SIZES = (process.env.BENCH_SYNC_SIZES ?? (QUICK ? "100" : "100,1000"))
  .split(",")
  .map((s) => Number(s.trim()));
const PHASE_MS = Number(process.env.BENCH_PHASE_S ?? (QUICK ? 3 : 20)) * 1000;
const RATE = 200;
const IN_FLIGHT = 16;
const BURST = QUICK ? 500 : 5000;
/** One steady-phase request in this many asks `?wait=applied`: the ack as the coordinator saw it. */
const ACK_SAMPLE_EVERY = 10;
const PORT_RANGE: [number, number] = [20000, 20999];
const SETTLE_MS = 3000;

interface Sent {
  seq: number;
  wait: boolean;
  sentAt: number;
  answeredAt: number;
  status: number;
  version: number;
}

interface Steady {
  sentToReceived: Summary;
  answeredToReceived?: Summary;
  sentToAnswered?: Summary;
  sentToAcked?: Summary;
  ackNote: string;
  sendRate: number;
  /** Requests answered (bare ws: acked) per second, first send to last answer. */
  doneRate: number;
  missing: number;
  failed: number;
}

interface Flat {
  acknowledged: number;
  delivered: number;
  failed: number;
  note: string;
}

interface Burst {
  count: number;
  failed: number;
  answeredPerS: number;
  toAllReceived: number;
  toAllTables?: number;
  toAllRecorded?: number;
  missing: number;
}

interface Storm {
  reconnected: Summary;
  synced: Summary;
  diffs: number;
  snapshots: number;
  framesOut: { diff: number; snapshot: number };
  connectedAfter: number;
}

interface SystemResult {
  steady?: Steady;
  flat?: Flat;
  burst?: Burst;
  storm?: Storm;
  memoryPerWorker?: number;
  heapPerWorker?: number;
  memoryNote?: string;
  cpuNote?: string;
  loopNote?: string;
  /** The coordinator's stages and garbage collections during (a) and (b), from /metrics. */
  stages?: Record<"steady" | "flat", Record<string, BucketSummary>>;
  gc?: Record<"steady" | "flat", Record<string, BucketSummary>>;
  /** What the database's backends waited on during (a) and (b) (bench/pg-waits.ts). */
  waits?: Record<"steady" | "flat", WaitShares>;
  error?: string;
}

let nextSeq = 1;

// ---- the coordinator ------------------------------------------------------------------------

/** Creates and patches spread round-robin over the workers, each tagged with its seq. */
class ChangeSource {
  private readonly perWorker: number[];

  constructor(
    private readonly url: string,
    private readonly workers: WorkerRef[],
    private readonly patchTargets: string[],
  ) {
    this.perWorker = workers.map(() => 0);
  }

  async send(i: number, wait: boolean): Promise<Sent> {
    const w = i % this.workers.length;
    const seq = nextSeq++;
    const create = this.perWorker[w]!++ % 2 === 1;
    const query = wait ? "?wait=applied&timeout_ms=10000" : "";
    const labels = { seq: String(seq) };
    const sentAt = nowMs();
    const res = create
      ? await request(this.url, "POST", `/routes${query}`, MANAGER, {
          id: randomUUID(),
          session_id: `sync-${seq}`,
          app: "jupyter",
          worker_id: this.workers[w]!.id,
          upstreams: [{ host: "127.0.0.1", port: 8888, weight: 1 }],
          labels,
        })
      : await request(this.url, "PATCH", `/routes/${this.patchTargets[w]}${query}`, MANAGER, {
          labels,
        });
    const answeredAt = nowMs();
    if (res.status >= 300 && res.status !== 202) {
      console.error(`change ${seq}: ${res.status} ${res.body.slice(0, 300)}`);
    }
    return {
      seq,
      wait,
      sentAt,
      answeredAt,
      status: res.status,
      version: Number(res.headers["x-routing-version"] ?? 0),
    };
  }
}

async function framesOut(url: string): Promise<{ diff: number; snapshot: number }> {
  const res = await request(url, "GET", "/metrics", "");
  const out = (type: string) =>
    metricSample(res.body, "appproxy_stream_frames_total", { direction: "out", type });
  return { diff: out("diff"), snapshot: out("snapshot") };
}

/** Median of a few VmRSS readings after the process has been left alone for SETTLE_MS. */
async function settledRss(pid: number): Promise<number> {
  await sleep(SETTLE_MS);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(await residentBytes(pid));
    await sleep(200);
  }
  return summarize(samples).p50;
}

interface CpuSnapshot {
  at: number;
  pids: number[];
  seconds: number[];
  machine: { busy: number; total: number };
}

async function cpuSnapshot(pids: number[]): Promise<CpuSnapshot> {
  return {
    at: nowMs(),
    pids,
    seconds: await Promise.all(pids.map((pid) => processCpuSeconds(pid))),
    machine: await machineCpuTicks(),
  };
}

/** Percent of one core each process used since `before`, and the machine's busy percent. */
async function cpuUse(before: CpuSnapshot) {
  const after = await cpuSnapshot(before.pids);
  const wall = (after.at - before.at) / 1000;
  return {
    processes: after.seconds.map((s, i) => Math.round(((s - before.seconds[i]!) / wall) * 100)),
    machine: Math.round(
      ((after.machine.busy - before.machine.busy) / (after.machine.total - before.machine.total)) *
        100,
    ),
  };
}

/** Completions per second from the first start to the last end. */
function completionRate(spans: Array<[start: number, end: number]>): number {
  const first = minOf(spans.map(([s]) => s));
  const last = maxOf(spans.map(([, e]) => e));
  return spans.length / ((last - first) / 1000);
}

async function countApplied(db: BenchDatabase, version: number): Promise<number> {
  const { rows } = await db.sql.query<{ n: number }>(
    "SELECT count(*)::int AS n FROM workers WHERE applied_version >= $1",
    [version],
  );
  return rows[0]!.n;
}

async function runCoordinator(n: number): Promise<SystemResult> {
  const result: SystemResult = {};
  const db = await useFreshDatabase(`appproxy_bench_sync_${n}`);
  const coordinator = await startCoordinator(
    {
      DATABASE_URL: db.url,
      // Workers stay alive however the bench treats them.
      WORKER_LOST_AFTER_S: "86400",
      // The event-loop delay printed beside the phases, sampled as finely as in earlier runs.
      EVENT_LOOP_RESOLUTION_MS: "10",
    },
    { inspect: true },
  );
  let fleet: Fleet | undefined;
  try {
    for (let i = 0; i < 20; i++) await request(coordinator.url, "GET", "/status", ADMIN);
    await sleep(SETTLE_MS);
    const idle = await memoryAfterGc(coordinator.inspectPort!);

    fleet = await startFleet();
    const workers = await fleet.call<WorkerRef[]>("startClients", {
      url: coordinator.url,
      registrationToken: REGISTRATION,
      count: n,
      prefix: `sync${n}`,
      portRange: PORT_RANGE,
    });
    await sleep(SETTLE_MS);
    const connected = await memoryAfterGc(coordinator.inspectPort!);
    const heap = (m: ProcessMemory) => m.heapUsed + m.external;
    result.memoryPerWorker = (connected.rss - idle.rss) / n;
    result.heapPerWorker = (heap(connected) - heap(idle)) / n;
    result.memoryNote = `coordinator after a full GC: RSS ${mib(idle.rss)} MiB and JS heap + external ${mib(heap(idle))} MiB with no worker, ${mib(connected.rss)} and ${mib(heap(connected))} MiB with ${n} idle streams`;

    // One route per worker to patch.
    const patchTargets: string[] = [];
    for (let at = 0; at < n; at += 1000) {
      const slice = workers.slice(at, at + 1000);
      const { body } = await mutate(coordinator.url, "POST", "/routes/batch", {
        routes: slice.map((w) => ({
          session_id: `patch-${w.name}`,
          app: "jupyter",
          worker_id: w.id,
          upstreams: [{ host: "127.0.0.1", port: 8888, weight: 1 }],
        })),
      });
      for (const item of (body as { items: Array<{ id: string }> }).items) {
        patchTargets.push(item.id);
      }
    }
    await fleet.call("waitVersion", { version: await headVersion(db) });
    const source = new ChangeSource(coordinator.url, workers, patchTargets);

    // (a) steady rate. A scrape resets the event-loop delay histogram (prom-client's default
    // metrics); the one after the phase reads what the phase saw.
    const scrape = async () => (await request(coordinator.url, "GET", "/metrics", "")).body;
    const beforeSteady = await scrape();
    const database = new URL(db.url).pathname.slice(1);
    let waiting = sampleWaits(db.sql, database);
    await fleet.call("mark");
    const steady: Sent[] = [];
    const pace = await paced(RATE, PHASE_MS, async (i) => {
      steady.push(await source.send(i, i % ACK_SAMPLE_EVERY === ACK_SAMPLE_EVERY - 1));
    });
    const loop = await scrape();
    const steadyWaits = await waiting.stop();
    // prom-client samples every 10 ms and reports the whole interval; the delay is what is beyond.
    const lagMs = (name: string) => Math.max(0, metricSample(loop, name) * 1000 - 10).toFixed(1);
    result.loopNote = `coordinator's event-loop delay during (a): p50 ${lagMs("nodejs_eventloop_lag_p50_seconds")} ms, p99 ${lagMs("nodejs_eventloop_lag_p99_seconds")} ms, max ${lagMs("nodejs_eventloop_lag_max_seconds")} ms`;
    const ok = steady.filter((s) => s.status < 300);
    const missing = await fleet.awaitReceipts(
      ok.map((s) => s.seq),
      30_000,
    );
    const r = fleet.receipts;
    const got = ok.filter((s) => r.has(s.seq));
    const plain = got.filter((s) => !s.wait);
    const acked = ok.filter((s) => s.wait);
    result.steady = {
      sentToReceived: summarize(got.map((s) => r.get(s.seq)! - s.sentAt)),
      answeredToReceived: summarize(plain.map((s) => r.get(s.seq)! - s.answeredAt)),
      sentToAnswered: summarize(plain.map((s) => s.answeredAt - s.sentAt)),
      sentToAcked: summarize(acked.map((s) => s.answeredAt - s.sentAt)),
      ackNote: `wait=applied on 1 request in ${ACK_SAMPLE_EVERY}`,
      sendRate: pace.started / pace.seconds,
      doneRate: completionRate(steady.map((s) => [s.sentAt, s.answeredAt])),
      missing,
      failed: steady.length - ok.length,
    };

    // (b) flat out: 16 in flight, each answered once its worker acknowledged it.
    const beforeFlat = await scrape();
    waiting = sampleWaits(db.sql, database);
    await fleet.call("mark");
    const flat: Sent[] = [];
    const flatStart = nowMs();
    let flatIndex = 0;
    const cpuBefore = await cpuSnapshot([coordinator.pid, fleet.pid, process.pid]);
    const flatRun = await driveFor(PHASE_MS, IN_FLIGHT, async () => {
      flat.push(await source.send(flatIndex++, true));
    });
    const cpu = await cpuUse(cpuBefore);
    // On CLOCK_MONOTONIC, as a --cpu-prof profile's sample times (BENCH_NODE_ARGS): its window.
    console.error(`N=${n}: (b) ran from ${flatStart.toFixed(0)} to ${nowMs().toFixed(0)} ms`);
    const afterFlat = await scrape();
    result.waits = { steady: steadyWaits, flat: await waiting.stop() };
    result.stages = {
      steady: stagesBetween(beforeSteady, loop),
      flat: stagesBetween(beforeFlat, afterFlat),
    };
    result.gc = { steady: gcBetween(beforeSteady, loop), flat: gcBetween(beforeFlat, afterFlat) };
    result.cpuNote =
      `during (b) the coordinator process used ${cpu.processes[0]}% of one core, the worker ` +
      `process ${cpu.processes[1]}%, the bench process ${cpu.processes[2]}%; the machine's ` +
      `${os.cpus().length} cores were ${cpu.machine}% busy (PostgreSQL and anything else running)`;
    const flatOk = flat.filter((s) => s.status === 200 || s.status === 201);
    await fleet.awaitReceipts(
      flatOk.map((s) => s.seq),
      30_000,
    );
    const lastReceipt = maxOf(flatOk.map((s) => r.get(s.seq) ?? 0));
    result.flat = {
      acknowledged: flatOk.length / flatRun.seconds,
      delivered: flatOk.filter((s) => r.has(s.seq)).length / ((lastReceipt - flatStart) / 1000),
      failed: flat.length - flatOk.length,
      note: "wait=applied on every request",
    };

    // (c) a burst without waiting, then time until every worker converged.
    await fleet.call("mark");
    const burst: Sent[] = [];
    let burstIndex = 0;
    const burstRun = await drive(BURST, IN_FLIGHT, async () => {
      burst.push(await source.send(burstIndex++, false));
    });
    const burstOk = burst.filter((s) => s.status < 300);
    const lastAnswer = maxOf(burst.map((s) => s.answeredAt));
    const head = maxOf(burstOk.map((s) => s.version));
    const recorded = (async () => {
      for (;;) {
        if ((await countApplied(db, head)) >= n) return nowMs();
        await sleep(5);
      }
    })();
    const tables = await fleet.call<{ at: number }>("waitVersion", { version: head });
    const recordedAt = await Promise.race([recorded, sleep(60_000).then(() => NaN)]);
    const burstMissing = await fleet.awaitReceipts(
      burstOk.map((s) => s.seq),
      30_000,
    );
    result.burst = {
      count: BURST,
      failed: burst.length - burstOk.length,
      answeredPerS: burstRun.perSecond,
      toAllReceived: maxOf(burstOk.map((s) => r.get(s.seq) ?? NaN)) - lastAnswer,
      toAllTables: tables.at - lastAnswer,
      toAllRecorded: recordedAt - lastAnswer,
      missing: burstMissing,
    };

    // (d) reconnect storm.
    const before = await framesOut(coordinator.url);
    const storm = await fleet.call<{
      reconnected: number[];
      synced: number[];
      diffs: number;
      snapshots: number;
    }>("storm", { timeoutMs: 120_000 });
    await sleep(1000);
    const after = await framesOut(coordinator.url);
    const { rows } = await db.sql.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM workers WHERE connected_instance IS NOT NULL",
    );
    result.storm = {
      reconnected: summarize(storm.reconnected),
      synced: summarize(storm.synced),
      diffs: storm.diffs,
      snapshots: storm.snapshots,
      framesOut: {
        diff: after.diff - before.diff,
        snapshot: after.snapshot - before.snapshot,
      },
      connectedAfter: rows[0]!.n,
    };
    const stats = await fleet.call<{ clientErrors: number; lastClientError: string }>("stats");
    if (stats.clientErrors > 0) {
      console.error(
        `N=${n}: the WorkerClients reported ${stats.clientErrors} errors (last: ${stats.lastClientError})`,
      );
    }
  } finally {
    await fleet?.stop();
    await coordinator.stop();
    await db.drop();
  }
  return result;
}

// ---- bare ws --------------------------------------------------------------------------------

async function runWs(n: number): Promise<SystemResult> {
  const server = await startWsBaseline();
  const fleet = await startFleet();
  try {
    await fleet.call("connectWs", { url: server.url, count: n });
    await server.connected(n);
    const sent: Array<{ seq: number; sentAt: number; ackedAt: number }> = [];
    const pace = await paced(RATE, PHASE_MS, async (i) => {
      const seq = nextSeq++;
      sent.push({ seq, ...(await server.send(i % n, seq)) });
    });
    const missing = await fleet.awaitReceipts(
      sent.map((s) => s.seq),
      30_000,
    );
    const r = fleet.receipts;
    const got = sent.filter((s) => r.has(s.seq));
    const steady: Steady = {
      sentToReceived: summarize(got.map((s) => r.get(s.seq)! - s.sentAt)),
      sentToAcked: summarize(sent.map((s) => s.ackedAt - s.sentAt)),
      ackNote: "the worker's ack frame back at the server",
      sendRate: pace.started / pace.seconds,
      doneRate: completionRate(sent.map((s) => [s.sentAt, s.ackedAt])),
      missing,
      failed: 0,
    };
    let i = 0;
    const start = nowMs();
    const flatSeqs: number[] = [];
    const run = await driveFor(PHASE_MS, IN_FLIGHT, async () => {
      const seq = nextSeq++;
      flatSeqs.push(seq);
      await server.send(i++ % n, seq);
    });
    await fleet.awaitReceipts(flatSeqs, 30_000);
    const last = maxOf(flatSeqs.map((s) => r.get(s) ?? 0));
    return {
      steady,
      flat: {
        acknowledged: run.perSecond,
        delivered: flatSeqs.length / ((last - start) / 1000),
        failed: 0,
        note: "each send waits for its ack",
      },
    };
  } finally {
    await fleet.stop();
    await server.stop();
  }
}

// ---- etcd -----------------------------------------------------------------------------------

async function runEtcd(n: number): Promise<SystemResult> {
  const etcd = await startEtcd();
  const fleet = await startFleet();
  const result: SystemResult = {};
  try {
    const rssBefore = await settledRss(etcd.pid);
    try {
      await fleet.call("watchEtcd", { url: etcd.url, count: n }, 120_000);
    } catch (error) {
      result.error = `${n} watches over the HTTP gateway failed: ${String(error)}`;
      return result;
    }
    const rssWatching = await settledRss(etcd.pid);
    result.memoryPerWorker = (rssWatching - rssBefore) / n;
    result.memoryNote = `etcd VmRSS ${mib(rssBefore)} MiB before, ${mib(rssWatching)} MiB with ${n} watches`;

    const put = async (i: number) => {
      const seq = nextSeq++;
      const w = i % n;
      const sentAt = nowMs();
      await etcdPut(
        etcd.url,
        w,
        `r${seq % 4}`,
        JSON.stringify({ seq, route: sampleRoute(seq, String(w), seq) }),
      );
      return { seq, sentAt, answeredAt: nowMs() };
    };
    const r = fleet.receipts;

    const steadyPuts: Array<{ seq: number; sentAt: number; answeredAt: number }> = [];
    const pace = await paced(RATE, PHASE_MS, async (i) => {
      steadyPuts.push(await put(i));
    });
    const missing = await fleet.awaitReceipts(
      steadyPuts.map((p) => p.seq),
      30_000,
    );
    const got = steadyPuts.filter((p) => r.has(p.seq));
    result.steady = {
      sentToReceived: summarize(got.map((p) => r.get(p.seq)! - p.sentAt)),
      answeredToReceived: summarize(got.map((p) => r.get(p.seq)! - p.answeredAt)),
      sentToAnswered: summarize(steadyPuts.map((p) => p.answeredAt - p.sentAt)),
      ackNote: "",
      sendRate: pace.started / pace.seconds,
      doneRate: completionRate(steadyPuts.map((p) => [p.sentAt, p.answeredAt])),
      missing,
      failed: 0,
    };

    const flatPuts: Array<{ seq: number; sentAt: number; answeredAt: number }> = [];
    const start = nowMs();
    let i = 0;
    const run = await driveFor(PHASE_MS, IN_FLIGHT, async () => {
      flatPuts.push(await put(i++));
    });
    const flatMissing = await fleet.awaitReceipts(
      flatPuts.map((p) => p.seq),
      30_000,
    );
    const lastAnswer = maxOf(flatPuts.map((p) => p.answeredAt));
    const lastReceipt = maxOf(flatPuts.map((p) => r.get(p.seq) ?? 0));
    result.flat = {
      acknowledged: run.perSecond,
      delivered: (flatPuts.length - flatMissing) / ((lastReceipt - start) / 1000),
      failed: 0,
      note: "puts answered (committed) per second",
    };
    result.burst = {
      count: flatPuts.length,
      failed: 0,
      answeredPerS: run.perSecond,
      toAllReceived: lastReceipt - lastAnswer,
      missing: flatMissing,
    };
  } finally {
    await fleet.stop();
    await etcd.stop();
  }
  return result;
}

// ---- report ---------------------------------------------------------------------------------

const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(1);
const ms = (v: number) =>
  Number.isFinite(v) ? (Math.abs(v) < 10 ? v.toFixed(2) : v.toFixed(1)) : "–";
const triple = (s: Summary | undefined) =>
  s && s.n > 0 ? `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}` : "n/a";
const rate = (v: number | undefined) =>
  v === undefined || !Number.isFinite(v) ? "n/a" : Math.round(v).toLocaleString("en-US");

function report(n: number, results: Record<"coordinator" | "ws" | "etcd", SystemResult>) {
  const { coordinator: c, ws: w, etcd: e } = results;
  const cell = (r: SystemResult, f: (r: SystemResult) => string) => (r.error ? "failed" : f(r));
  const rows: Array<[string, string, string, string]> = [];
  const row = (label: string, f: (r: SystemResult) => string) =>
    rows.push([label, cell(c, f), cell(w, f), cell(e, f)]);

  row(`(a) ${RATE} changes/s: achieved send rate /s, answered /s`, (r) =>
    r.steady ? `${rate(r.steady.sendRate)}, ${rate(r.steady.doneRate)}` : "n/a",
  );
  row("(a) request sent → worker has it, ms p50 / p99 / max", (r) =>
    triple(r.steady?.sentToReceived),
  );
  row("(a) request answered → worker has it, ms", (r) => triple(r.steady?.answeredToReceived));
  row("(a) request sent → answered (API / put), ms", (r) => triple(r.steady?.sentToAnswered));
  row("(a) request sent → ack recorded, ms", (r) => triple(r.steady?.sentToAcked));
  row("(a) changes never received / requests failed", (r) =>
    r.steady ? `${r.steady.missing} / ${r.steady.failed}` : "n/a",
  );
  row(`(b) flat out, ${IN_FLIGHT} in flight: acknowledged /s`, (r) => rate(r.flat?.acknowledged));
  row("(b) flat out: delivered to workers /s", (r) => rate(r.flat?.delivered));
  row("(b) flat out: answered 202 (ack timed out) or failed", (r) =>
    r.flat ? String(r.flat.failed) : "n/a",
  );
  row("(c) burst: changes, answered /s", (r) =>
    r.burst ? `${r.burst.count.toLocaleString("en-US")}, ${rate(r.burst.answeredPerS)}` : "n/a",
  );
  row("(c) burst: requests failed / changes never received", (r) =>
    r.burst ? `${r.burst.failed} / ${r.burst.missing}` : "n/a",
  );
  row("(c) last answer → every change received, ms", (r) =>
    r.burst ? ms(r.burst.toAllReceived) : "n/a",
  );
  row("(c) last answer → every worker's table at the head version, ms", (r) =>
    r.burst?.toAllTables !== undefined ? ms(r.burst.toAllTables) : "n/a",
  );
  row("(c) last answer → every applied_version at the head (database), ms", (r) =>
    r.burst?.toAllRecorded !== undefined ? ms(r.burst.toAllRecorded) : "n/a",
  );
  row("(d) storm: drop → reconnected (hello), ms p50 / p99 / max", (r) =>
    triple(r.storm?.reconnected),
  );
  row("(d) storm: drop → synced and acked, ms p50 / p99 / max", (r) => triple(r.storm?.synced));
  row("(d) storm: streams resumed with a diff / with a snapshot", (r) =>
    r.storm ? `${r.storm.diffs} / ${r.storm.snapshots}` : "n/a",
  );
  row("(d) storm: frames out per /metrics, diff / snapshot", (r) =>
    r.storm ? `${r.storm.framesOut.diff} / ${r.storm.framesOut.snapshot}` : "n/a",
  );
  row("(d) storm: workers connected per database, 1 s after", (r) =>
    r.storm ? `${r.storm.connectedAfter} of ${n}` : "n/a",
  );
  row("(e) resident memory (RSS) per idle connected worker, KiB", (r) =>
    r.memoryPerWorker !== undefined ? (r.memoryPerWorker / 1024).toFixed(1) : "n/a",
  );
  row("(e) JS heap + external per idle connected worker, KiB", (r) =>
    r.heapPerWorker !== undefined ? (r.heapPerWorker / 1024).toFixed(1) : "n/a",
  );

  console.log(`\n### N = ${n.toLocaleString("en-US")} workers\n`);
  console.log("| measurement | coordinator | bare ws | etcd 3.4 (HTTP gateway) |");
  console.log("| --- | ---: | ---: | ---: |");
  for (const [label, a, b, d] of rows) console.log(`| ${label} | ${a} | ${b} | ${d} |`);
  const notes = [
    c.steady && `coordinator ack: ${c.steady.ackNote}`,
    w.steady && `bare ws ack: ${w.steady.ackNote}`,
    c.flat && `coordinator flat out: ${c.flat.note}`,
    w.flat && `bare ws flat out: ${w.flat.note}`,
    e.flat && `etcd flat out: ${e.flat.note}; (c) for etcd is the drain of its flat-out run`,
    c.cpuNote,
    c.loopNote,
    c.memoryNote,
    e.memoryNote,
    c.error && `coordinator: ${c.error}`,
    w.error && `bare ws: ${w.error}`,
    e.error && `etcd: ${e.error}`,
  ].filter(Boolean);
  console.log("");
  for (const note of notes) console.log(`- ${note}`);
  if (c.stages && c.gc) stageReport(c.stages, c.gc);
  if (c.waits) {
    const line = (w: WaitShares) =>
      `${w.active.toFixed(2)} active backends per sample on average; ` +
      w.shares
        .slice(0, 6)
        .map(([wait, share]) => `${wait} ${(share * 100).toFixed(0)} %`)
        .join(", ");
    console.log(
      `\nPostgreSQL backends of the coordinator's database, sampled every 10 ms (CPU = no wait event):\n`,
    );
    console.log(`- (a): ${line(c.waits.steady)}`);
    console.log(`- (b): ${line(c.waits.flat)}`);
  }
}

/** The coordinator's account of (a) and (b): each stage of a change, and its collections. */
function stageReport(
  stages: NonNullable<SystemResult["stages"]>,
  gc: NonNullable<SystemResult["gc"]>,
) {
  const bound = (v: number) => (Number.isFinite(v) ? `≤ ${ms(v)}` : "> 2,500");
  const cell = (s: BucketSummary | undefined) =>
    s && s.n > 0 ? `${s.n} · ${ms(s.p50)} / ${ms(s.p99)} / ${bound(s.maxBound)}` : "–";
  console.log(
    "\nCoordinator's stages of a change (appproxy_change_stage_seconds, from /metrics before and after each phase; count · ms p50 / p99 / max bucket):\n",
  );
  console.log(`| stage | (a) ${RATE} changes/s | (b) flat out |`);
  console.log("| --- | ---: | ---: |");
  for (const stage of Object.keys(stages.steady)) {
    console.log(`| ${stage} | ${cell(stages.steady[stage])} | ${cell(stages.flat[stage])} |`);
  }
  const gcCell = (s: BucketSummary | undefined) =>
    s && s.n > 0 ? `${s.n} · ${ms(s.sum)} ms in all, max ${bound(s.maxBound)}` : "–";
  for (const kind of Object.keys(gc.steady)) {
    console.log(`| GC ${kind} | ${gcCell(gc.steady[kind])} | ${gcCell(gc.flat[kind])} |`);
  }
}

async function clockCheck(): Promise<string> {
  const fleet = await startFleet();
  try {
    let worst = 0;
    for (let i = 0; i < 20; i++) {
      const before = nowMs();
      const { now } = await fleet.call<{ now: number }>("ping");
      const after = nowMs();
      if (now < before || now > after) {
        throw new Error(`clock check: worker process read ${now}, outside [${before}, ${after}]`);
      }
      worst = Math.max(worst, after - before);
    }
    return `worker process's clock readings fell inside every IPC round trip (longest ${ms(worst)} ms)`;
  } finally {
    await fleet.stop();
  }
}

async function main() {
  const load = os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
  const clock = await clockCheck();
  const etcdAvailable = process.env.BENCH_SKIP_ETCD !== "1";
  // Installed before the runs, so that its install does not load the machine during one.
  if (etcdAvailable && etcdVersion() === undefined) ensureEtcd();
  const all: Array<[number, Record<"coordinator" | "ws" | "etcd", SystemResult>]> = [];
  for (const n of SIZES) {
    console.error(`N=${n}: coordinator…`);
    const coordinator = await runCoordinator(n);
    console.error(`N=${n}: bare ws…`);
    const ws: SystemResult =
      process.env.BENCH_SKIP_WS === "1" ? { error: "skipped" } : await runWs(n);
    console.error(`N=${n}: etcd…`);
    const etcd: SystemResult = etcdAvailable
      ? await runEtcd(n)
      : { error: "skipped (BENCH_SKIP_ETCD=1)" };
    all.push([n, { coordinator, ws, etcd }]);
  }
  console.log(`\n## bench:sync on ${machine()}`);
  console.log(
    `\nPostgreSQL at 127.0.0.1:5432; etcd ${etcdVersion() ?? "absent"}; phases of ${PHASE_MS / 1000} s; load average at start ${load}; ${clock}.`,
  );
  for (const [n, results] of all) report(n, results);
}

const MODES: Record<string, () => Promise<void>> = {
  databases: runDatabaseComparison,
  idle: runIdleFleet,
};
await runBenchmark(MODES[process.env.BENCH_SYNC_MODE ?? ""] ?? main);
