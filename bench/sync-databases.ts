/**
 * `BENCH_SYNC_MODE=databases npm run bench:sync`: the embedded database (no DATABASE_URL, what
 * `npm start` gives a newcomer) beside PostgreSQL, in one run. Each gets a coordinator process of
 * its own, 100 connected WorkerClient workers, and creates at 200/s for BENCH_PHASE_S (10 s by
 * default), while a prober asks `/healthz` every 20 ms: what a stalled event loop does to
 * everything else the process serves. Prints one Markdown table.
 *
 * Settings: BENCH_DATABASES_WORKERS (100), BENCH_DATABASES_RATE (200), BENCH_PHASE_S (10),
 * BENCH_DATABASES_RUNS (1; each run measures both databases, alternating which goes first).
 */
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { deferCleanup } from "./cleanup.js";
import { startFleet, type Fleet, type WorkerRef } from "./fleet.js";
import { MANAGER, REGISTRATION, startCoordinator, useFreshDatabase } from "./harness.js";
import {
  machine,
  metricSample,
  nowMs,
  paced,
  request,
  sleep,
  summarize,
  type Summary,
} from "./support.js";

const WORKERS = Number(process.env.BENCH_DATABASES_WORKERS ?? 100);
const RATE = Number(process.env.BENCH_DATABASES_RATE ?? 200);
const PHASE_MS = Number(process.env.BENCH_PHASE_S ?? 10) * 1000;
const RUNS = Number(process.env.BENCH_DATABASES_RUNS ?? 1);
const PROBE_EVERY_MS = 20;

type Kind = "embedded" | "postgres";

interface Measured {
  kind: Kind;
  created: Summary;
  sentToReceived: Summary;
  healthz: Summary;
  loopMaxMs: number;
  loopP99Ms: number;
  answeredPerS: number;
  failed: number;
  missing: number;
}

/** A coordinator on `kind`, its database made fresh and removed at the end. */
/** The event-loop delay this mode reports is sampled every 10 ms, as in earlier runs. */
const LOOP_RESOLUTION_MS = "10";

async function coordinatorOn(kind: Kind) {
  if (kind === "postgres") {
    const db = await useFreshDatabase(`appproxy_bench_db_${process.pid}`);
    const c = await startCoordinator({
      DATABASE_URL: db.url,
      WORKER_LOST_AFTER_S: "86400",
      EVENT_LOOP_RESOLUTION_MS: LOOP_RESOLUTION_MS,
    });
    return {
      ...c,
      stop: async () => {
        await c.stop();
        await db.drop();
      },
    };
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "appproxy-bench-embedded-"));
  const removeDir = deferCleanup(`directory ${dir}`, async () =>
    rmSync(dir, { recursive: true, force: true }),
  );
  // An empty DATABASE_URL counts as unset: the bench's own environment may name one.
  const c = await startCoordinator({
    DATABASE_URL: "",
    DATA_DIR: dir,
    WORKER_LOST_AFTER_S: "86400",
    EVENT_LOOP_RESOLUTION_MS: LOOP_RESOLUTION_MS,
  });
  return {
    ...c,
    stop: async () => {
      await c.stop();
      await removeDir();
    },
  };
}

/** `/healthz` every PROBE_EVERY_MS until stopped: each round trip in ms. */
function probeHealth(url: string) {
  const times: number[] = [];
  let running = true;
  const done = (async () => {
    while (running) {
      const at = nowMs();
      await request(url, "GET", "/healthz", "");
      times.push(nowMs() - at);
      await sleep(PROBE_EVERY_MS - (nowMs() - at));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await done;
      return times;
    },
  };
}

let nextSeq = 1_000_000;

async function measure(kind: Kind): Promise<Measured> {
  const coordinator = await coordinatorOn(kind);
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet();
    const workers = await fleet.call<WorkerRef[]>(
      "startClients",
      {
        url: coordinator.url,
        registrationToken: REGISTRATION,
        count: WORKERS,
        prefix: `db${kind}`,
        portRange: [20000, 20999],
      },
      120_000,
    );
    await sleep(2000);
    // A scrape resets prom-client's event-loop delay histogram; the next one reads the phase.
    await request(coordinator.url, "GET", "/metrics", "");
    const probe = probeHealth(coordinator.url);
    const sent: Array<{ seq: number; sentAt: number; answeredAt: number; status: number }> = [];
    const pace = await paced(RATE, PHASE_MS, async (i) => {
      const seq = nextSeq++;
      const sentAt = nowMs();
      const res = await request(coordinator.url, "POST", "/routes", MANAGER, {
        id: randomUUID(),
        session_id: `db-${seq}`,
        app: "jupyter",
        worker_id: workers[i % workers.length]!.id,
        upstreams: [{ host: "127.0.0.1", port: 8888, weight: 1 }],
        labels: { seq: String(seq) },
      });
      if (res.status !== 201)
        console.error(`create ${seq}: ${res.status} ${res.body.slice(0, 200)}`);
      sent.push({ seq, sentAt, answeredAt: nowMs(), status: res.status });
    });
    const healthz = await probe.stop();
    const metrics = (await request(coordinator.url, "GET", "/metrics", "")).body;
    // prom-client samples every 10 ms and reports the whole interval; the delay is what is beyond.
    const lag = (name: string) => Math.max(0, metricSample(metrics, name) * 1000 - 10);
    const ok = sent.filter((s) => s.status === 201);
    const missing = await fleet.awaitReceipts(
      ok.map((s) => s.seq),
      30_000,
    );
    const got = ok.filter((s) => fleet!.receipts.has(s.seq));
    const first = Math.min(...sent.map((s) => s.sentAt));
    const last = Math.max(...sent.map((s) => s.answeredAt));
    return {
      kind,
      created: summarize(ok.map((s) => s.answeredAt - s.sentAt)),
      sentToReceived: summarize(got.map((s) => fleet!.receipts.get(s.seq)! - s.sentAt)),
      healthz: summarize(healthz),
      loopMaxMs: lag("nodejs_eventloop_lag_max_seconds"),
      loopP99Ms: lag("nodejs_eventloop_lag_p99_seconds"),
      answeredPerS: sent.length / ((last - first) / 1000),
      failed: sent.length - ok.length,
      missing: missing + (pace.started - sent.length),
    };
  } finally {
    await fleet?.stop();
    await coordinator.stop();
  }
}

const ms = (v: number) => (Math.abs(v) < 10 ? v.toFixed(2) : v.toFixed(1));
const triple = (s: Summary) => (s.n > 0 ? `${ms(s.p50)} / ${ms(s.p99)} / ${ms(s.max)}` : "n/a");

export async function runDatabaseComparison(): Promise<void> {
  const load = os
    .loadavg()
    .map((l) => l.toFixed(1))
    .join(" ");
  const results: Measured[] = [];
  for (let run = 0; run < RUNS; run++) {
    const order: Kind[] = run % 2 === 0 ? ["embedded", "postgres"] : ["postgres", "embedded"];
    for (const kind of order) {
      console.error(`run ${run + 1}: ${kind}…`);
      results.push(await measure(kind));
    }
  }
  console.log(`\n## bench:sync, embedded beside PostgreSQL, on ${machine()}`);
  console.log(
    `\n${WORKERS} connected workers, creates at ${RATE}/s for ${PHASE_MS / 1000} s, /healthz every ${PROBE_EVERY_MS} ms; load average at start ${load}.\n`,
  );
  console.log(
    "| run | database | creates answered /s | create, ms p50 / p99 / max | create sent → worker has it, ms p50 / p99 / max | /healthz, ms p50 / p99 / max | event-loop delay p99 / max, ms | failed / never received |",
  );
  console.log("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
  results.forEach((r, i) => {
    console.log(
      `| ${Math.floor(i / 2) + 1} | ${r.kind} | ${Math.round(r.answeredPerS)} | ${triple(r.created)} | ${triple(r.sentToReceived)} | ${triple(r.healthz)} | ${ms(r.loopP99Ms)} / ${ms(r.loopMaxMs)} | ${r.failed} / ${r.missing} |`,
    );
  });
}
