/**
 * `BENCH_SYNC_MODE=idle npm run bench:sync`: what a connected fleet that receives no change costs.
 * A coordinator on a fresh PostgreSQL database, BENCH_IDLE_WORKERS (1,000) WorkerClient workers
 * connected and settled, then nothing for BENCH_IDLE_S (60) seconds: the CPU the coordinator
 * process and the PostgreSQL backends serving its database used meanwhile, in percent of one
 * core, and the frames it sent and received. BENCH_IDLE_RUNS (1) repeats it.
 */
import { startFleet, type Fleet } from "./fleet.js";
import { ADMIN, REGISTRATION, startCoordinator, useFreshDatabase } from "./harness.js";
import { machine, nowMs, processCpuSeconds, request, sleep } from "./support.js";

const WORKERS = Number(process.env.BENCH_IDLE_WORKERS ?? 1000);
const IDLE_MS = Number(process.env.BENCH_IDLE_S ?? 60) * 1000;
const RUNS = Number(process.env.BENCH_IDLE_RUNS ?? 1);
const SETTLE_MS = 15_000;

interface Idle {
  coordinatorPct: number;
  databasePct: number;
  backends: number;
  backendsGone: number;
  framesOut: number;
  framesIn: number;
}

/** CPU seconds of each process, by pid; a process that ended reads as absent. */
async function cpuOf(pids: number[]): Promise<Map<number, number>> {
  const out = new Map<number, number>();
  for (const pid of pids) {
    try {
      out.set(pid, await processCpuSeconds(pid));
    } catch {
      // gone
    }
  }
  return out;
}

async function frames(url: string): Promise<{ out: number; in: number }> {
  const text = (await request(url, "GET", "/metrics", "")).body;
  let out = 0;
  let inbound = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith("appproxy_stream_frames_total{")) continue;
    const value = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.includes('direction="out"')) out += value;
    else inbound += value;
  }
  return { out, in: inbound };
}

async function measureIdle(): Promise<Idle> {
  const db = await useFreshDatabase(`appproxy_bench_idle_${process.pid}`);
  const coordinator = await startCoordinator({
    DATABASE_URL: db.url,
    WORKER_LOST_AFTER_S: "86400",
  });
  let fleet: Fleet | undefined;
  try {
    fleet = await startFleet();
    await fleet.call(
      "startClients",
      {
        url: coordinator.url,
        registrationToken: REGISTRATION,
        count: WORKERS,
        prefix: "idle",
        portRange: [20000, 20999],
      },
      900_000,
    );
    await sleep(SETTLE_MS);
    const status = JSON.parse((await request(coordinator.url, "GET", "/status", ADMIN)).body) as {
      workers: { connected: number };
    };
    if (status.workers.connected !== WORKERS) {
      throw new Error(`${status.workers.connected} of ${WORKERS} workers connected`);
    }
    const backends = async () =>
      (
        await db.sql.query<{ pid: number }>(
          "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()",
        )
      ).rows.map((r) => r.pid);
    const framesBefore = await frames(coordinator.url);
    // The backends are read every second, each one's first and last CPU time kept: a backend the
    // pool closes within the minute still counts up to its last second, one opened within it
    // from its start. The one this bench queries through is left out.
    const first = new Map<number, number>();
    const last = new Map<number, number>();
    const sample = async (initial: boolean): Promise<void> => {
      const cpu = await cpuOf(await backends());
      for (const [pid, seconds] of cpu) {
        if (!first.has(pid)) first.set(pid, initial ? seconds : 0);
        last.set(pid, seconds);
      }
    };
    const coordinatorBefore = await processCpuSeconds(coordinator.pid);
    await sample(true);
    const start = nowMs();
    while (nowMs() - start < IDLE_MS) {
      await sleep(Math.min(1000, IDLE_MS - (nowMs() - start)));
      await sample(false);
    }
    const seconds = (nowMs() - start) / 1000;
    const coordinatorAfter = await processCpuSeconds(coordinator.pid);
    const framesAfter = await frames(coordinator.url);
    const alive = new Set(await backends());
    let database = 0;
    let gone = 0;
    for (const [pid, end] of last) {
      if (!alive.has(pid)) gone++;
      database += end - first.get(pid)!;
    }
    const pct = (s: number) => (s / seconds) * 100;
    return {
      coordinatorPct: pct(coordinatorAfter - coordinatorBefore),
      databasePct: pct(database),
      backends: last.size,
      backendsGone: gone,
      // The scrapes themselves are frames of no one: counted from the stream metrics only.
      framesOut: (framesAfter.out - framesBefore.out) / seconds,
      framesIn: (framesAfter.in - framesBefore.in) / seconds,
    };
  } finally {
    await fleet?.stop();
    await coordinator.stop();
    await db.drop();
  }
}

export async function runIdleFleet(): Promise<void> {
  const results: Idle[] = [];
  for (let run = 0; run < RUNS; run++) {
    console.error(`idle run ${run + 1}…`);
    results.push(await measureIdle());
  }
  console.log(`\n## bench:sync, an idle connected fleet, on ${machine()}`);
  console.log(
    `\n${WORKERS} connected WorkerClient workers, PostgreSQL, HEARTBEAT_INTERVAL_S 10; CPU over ${IDLE_MS / 1000} s with no change, in % of one core (process CPU time from /proc; the database is the backends serving the coordinator's database, read every second).\n`,
  );
  console.log(
    "| run | coordinator % | PostgreSQL backends % | together % | frames out /s | frames in /s |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: |");
  results.forEach((r, i) => {
    const gone =
      r.backendsGone > 0
        ? ` (${r.backendsGone} of ${r.backends} ended, counted to their last second)`
        : "";
    console.log(
      `| ${i + 1} | ${r.coordinatorPct.toFixed(2)} | ${r.databasePct.toFixed(2)}${gone} | ${(r.coordinatorPct + r.databasePct).toFixed(2)} | ${r.framesOut.toFixed(1)} | ${r.framesIn.toFixed(1)} |`,
    );
  });
}
