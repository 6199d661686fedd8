/**
 * What a worker's port range costs: registration time and database size per worker for ranges
 * of 100, 20,000 and 50,000 ports, and route creation at 1,000 workers of 100 against 20,000
 * ports. Run by bench:api (`npm run bench:api -- --port-ranges` runs this part alone).
 */
import pg from "pg";
import {
  BENCH_TOKENS,
  drive,
  freshDatabase,
  request,
  percentile,
  startCoordinatorProcess,
} from "./support.js";

const M = BENCH_TOKENS.MANAGER_TOKENS;
const R = BENCH_TOKENS.REGISTRATION_TOKENS;

export const RANGE_SIZES = [100, 20_000, 50_000] as const;

async function databaseBytes(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    // Written pages only count once they reach the files pg_database_size reads.
    await client.query("CHECKPOINT");
    const { rows } = await client.query<{ size: string }>(
      "SELECT pg_database_size(current_database()) AS size",
    );
    return Number(rows[0]!.size);
  } finally {
    await client.end();
  }
}

async function register(url: string, name: string, ports: number, host: number): Promise<void> {
  const res = await request(url, "POST", "/workers/register", R, {
    name,
    advertised_host: `10.${(host >> 16) & 255}.${(host >> 8) & 255}.${host & 255}`,
    frontend_mode: "port",
    port_range: [10_000, 10_000 + ports - 1],
  });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${res.body}`);
}

/** A coordinator on a fresh database, its reaper quiet (no worker streams here). */
async function start(name: string) {
  const db = await freshDatabase(name);
  const coordinator = await startCoordinatorProcess({
    DATABASE_URL: db.url,
    WORKER_LOST_AFTER_S: "86400",
  });
  return {
    db,
    coordinator,
    stop: async () => {
      await coordinator.stop();
      await db.drop();
    },
  };
}

export interface RegistrationCost {
  ports: number;
  workers: number;
  medianMs: number;
  p90Ms: number;
  bytesPerWorker: number;
}

/**
 * Registers `workers` workers of each range size one after another on one fresh database (after
 * a warm-up of the same size): the median and p90 time per registration, and the growth of
 * pg_database_size per worker.
 */
export async function registrationCosts(workers: number): Promise<RegistrationCost[]> {
  const env = await start("appproxy_bench_port_ranges");
  const costs: RegistrationCost[] = [];
  try {
    let host = 0;
    for (const ports of RANGE_SIZES) {
      for (let i = 0; i < 5; i++)
        await register(env.coordinator.url, `warm-${ports}-${i}`, ports, ++host);
      const before = await databaseBytes(env.db.url);
      const times: number[] = [];
      for (let i = 0; i < workers; i++) {
        const started = process.hrtime.bigint();
        await register(env.coordinator.url, `w-${ports}-${i}`, ports, ++host);
        times.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
      const after = await databaseBytes(env.db.url);
      const sorted = [...times].sort((a, b) => a - b);
      costs.push({
        ports,
        workers,
        medianMs: percentile(sorted, 50),
        p90Ms: percentile(sorted, 90),
        bytesPerWorker: (after - before) / workers,
      });
    }
  } finally {
    await env.stop();
  }
  return costs;
}

function route(i: number) {
  return {
    session_id: `ranges-${i}`,
    app: "jupyter",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
  };
}

async function createSingles(url: string, total: number, concurrency: number): Promise<number> {
  let failures = 0;
  const r = await drive(total, concurrency, async (i) => {
    const res = await request(url, "POST", "/routes", M, route(i));
    if (res.status !== 201 && failures++ === 0) console.error(res.status, res.body);
  });
  if (failures) throw new Error(`${failures} creates failed`);
  return r.perSecond;
}

export interface CreateComparison {
  workers: number;
  /** Creates per second at concurrency 16, each round's figure, by range size. */
  narrow: number[];
  wide: number[];
  registerSeconds: { narrow: number; wide: number };
}

/**
 * Two coordinators on two databases, each with `workers` workers, of 100 and of 20,000 ports:
 * single creates at concurrency 16, in rounds taking turns (this machine's speed drifts).
 */
export async function createsByRangeSize(
  workers: number,
  rounds: number,
  perRound: number,
): Promise<CreateComparison> {
  const narrow = await start("appproxy_bench_ranges_narrow");
  const wide = await start("appproxy_bench_ranges_wide");
  try {
    const registerAll = async (url: string, ports: number) => {
      const r = await drive(workers, 4, (i) => register(url, `w${i}`, ports, i + 1));
      return r.seconds;
    };
    const registerSeconds = {
      narrow: await registerAll(narrow.coordinator.url, 100),
      wide: await registerAll(wide.coordinator.url, 20_000),
    };
    // Warm-up: until the JIT has compiled the request path.
    for (const env of [narrow, wide]) await createSingles(env.coordinator.url, perRound, 16);
    const result: CreateComparison = { workers, narrow: [], wide: [], registerSeconds };
    for (let round = 0; round < rounds; round++) {
      result.narrow.push(await createSingles(narrow.coordinator.url, perRound, 16));
      result.wide.push(await createSingles(wide.coordinator.url, perRound, 16));
    }
    return result;
  } finally {
    await narrow.stop();
    await wide.stop();
  }
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** The registration figures as Markdown. */
export function registrationTable(costs: RegistrationCost[]): string {
  const spread = (values: number[]) => Math.max(...values) / Math.min(...values);
  return [
    "| ports per worker | workers | registration, median ms | p90 ms | database growth per worker |",
    "| ---: | ---: | ---: | ---: | ---: |",
    ...costs.map(
      (c) =>
        `| ${fmt(c.ports)} | ${c.workers} | ${fmt(c.medianMs, 1)} | ${fmt(c.p90Ms, 1)} | ${fmt(c.bytesPerWorker / 1024, 1)} KiB |`,
    ),
    "",
    `Spread across sizes (largest / smallest): registration time ${fmt(spread(costs.map((c) => c.medianMs)), 2)}×, database growth ${fmt(spread(costs.map((c) => Math.max(c.bytesPerWorker, 1))), 2)}×.`,
  ].join("\n");
}

/** The create comparison as Markdown. */
export function createTable(creates: CreateComparison): string {
  return [
    `| ${fmt(creates.workers)} workers | registering them | creates/s, concurrency 16 (median of ${creates.narrow.length} rounds) | rounds |`,
    "| --- | ---: | ---: | --- |",
    `| 100 ports each | ${fmt(creates.registerSeconds.narrow, 1)} s | ${fmt(median(creates.narrow))} | ${creates.narrow.map((n) => fmt(n)).join(", ")} |`,
    `| 20,000 ports each | ${fmt(creates.registerSeconds.wide, 1)} s | ${fmt(median(creates.wide))} | ${creates.wide.map((n) => fmt(n)).join(", ")} |`,
    "",
    `Ratio 20,000 / 100 ports: ${fmt(median(creates.wide) / median(creates.narrow), 2)}.`,
  ].join("\n");
}

/**
 * Both measurements, printed as each ends. BENCH_RANGE_WORKERS (50), BENCH_RANGE_FLEET (1,000),
 * BENCH_RANGE_ROUNDS (5) and BENCH_RANGE_CREATES (creates per round, 2,000) change the counts.
 */
export async function printPortRangeFigures(): Promise<void> {
  const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
  console.log(registrationTable(await registrationCosts(env("BENCH_RANGE_WORKERS", 50))));
  console.log("");
  const creates = await createsByRangeSize(
    env("BENCH_RANGE_FLEET", 1000),
    env("BENCH_RANGE_ROUNDS", 5),
    env("BENCH_RANGE_CREATES", 2000),
  );
  console.log(createTable(creates));
}
