/**
 * What a worker's port range costs: registration time and database size per worker for ranges
 * of 100, 20,000 and 50,000 ports, and route creation at 1,000 workers of 100 against 20,000
 * ports. Run by bench:api (`npm run bench:api -- --port-ranges` runs this part alone).
 */
import pg from "pg";
import {
  createSingles,
  median,
  registerPortWorker,
  startQuietCoordinator,
  startQuietEmbeddedCoordinator,
} from "./api-fleet.js";
import { drive, percentile } from "./support.js";

export const RANGE_SIZES = [100, 20_000, 50_000] as const;

const range = (ports: number): [number, number] => [10_000, 10_000 + ports - 1];

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

async function databaseBytes(url: string): Promise<number> {
  return withClient(url, async (client) => {
    // Written pages only count once they reach the files pg_database_size reads.
    await client.query("CHECKPOINT");
    const { rows } = await client.query<{ size: string }>(
      "SELECT pg_database_size(current_database()) AS size",
    );
    return Number(rows[0]!.size);
  });
}

/** The mean stored size of the rows of workers whose range holds `ports` ports. */
async function rowBytes(url: string, ports: number): Promise<number> {
  return withClient(url, async (client) => {
    const { rows } = await client.query<{ bytes: string }>(
      "SELECT avg(pg_column_size(w.*)) AS bytes FROM workers w WHERE port_hi - port_lo + 1 = $1",
      [ports],
    );
    return Number(rows[0]!.bytes);
  });
}

export interface RegistrationCost {
  ports: number;
  workers: number;
  medianMs: number;
  p90Ms: number;
  /** Growth of pg_database_size per worker, over `sizeWorkers` workers of this size. */
  bytesPerWorker: number;
  sizeWorkers: number;
  /** The stored size of one worker's row (pg_column_size). */
  rowBytes: number;
}

/**
 * On one fresh database, after a warm-up: `workers` registrations of each range size, the sizes
 * taking turns one registration at a time (this machine's speed drifts with its load, which
 * would otherwise favour the size measured first), for the median and p90 time per
 * registration; then, size after size, `sizeWorkers` more for the growth of pg_database_size
 * per worker (enough of them, 4 at a time, that the 8 KiB steps in which each table and index
 * grows are a small part of it).
 */
export async function registrationCosts(
  workers: number,
  sizeWorkers: number,
): Promise<RegistrationCost[]> {
  const env = await startQuietCoordinator("appproxy_bench_port_ranges");
  const url = env.coordinator.url;
  let host = 0;
  const register = (name: string, ports: number) =>
    registerPortWorker(url, name, range(ports), ++host);
  try {
    for (const ports of RANGE_SIZES) {
      for (let i = 0; i < 5; i++) await register(`warm-${ports}-${i}`, ports);
    }
    const times = new Map<number, number[]>(RANGE_SIZES.map((p) => [p, []]));
    for (let i = 0; i < workers; i++) {
      // Each size first, second and third in turn: a registration's place in the round counts.
      const n = RANGE_SIZES.length;
      for (const ports of RANGE_SIZES.map((_, k) => RANGE_SIZES[(i + k) % n]!)) {
        const started = process.hrtime.bigint();
        await register(`w-${ports}-${i}`, ports);
        times.get(ports)!.push(Number(process.hrtime.bigint() - started) / 1e6);
      }
    }
    const costs: RegistrationCost[] = [];
    for (const ports of RANGE_SIZES) {
      const before = await databaseBytes(env.db.url);
      await drive(sizeWorkers, 4, (i) => register(`s-${ports}-${i}`, ports));
      const after = await databaseBytes(env.db.url);
      const sorted = [...times.get(ports)!].sort((a, b) => a - b);
      costs.push({
        ports,
        workers,
        medianMs: percentile(sorted, 50),
        p90Ms: percentile(sorted, 90),
        bytesPerWorker: (after - before) / sizeWorkers,
        sizeWorkers,
        rowBytes: await rowBytes(env.db.url, ports),
      });
    }
    return costs;
  } finally {
    await env.stop();
  }
}

export interface CreateComparison {
  workers: number;
  database: "PostgreSQL" | "embedded";
  /** Creates per second at concurrency 16, each round's figure, by range size. */
  narrow: number[];
  wide: number[];
  registerSeconds: { narrow: number; wide: number };
}

/**
 * Two coordinators on two databases (PostgreSQL's or embedded ones), each with `workers` workers,
 * of 100 and of 20,000 ports: single creates at concurrency 16, in rounds taking turns (this
 * machine's speed drifts), each size first in every other round.
 */
export async function createsByRangeSize(
  workers: number,
  rounds: number,
  perRound: number,
  database: CreateComparison["database"] = "PostgreSQL",
): Promise<CreateComparison> {
  const start = database === "embedded" ? startQuietEmbeddedCoordinator : startQuietCoordinator;
  const narrow = await start("appproxy_bench_ranges_narrow");
  const wide = await start("appproxy_bench_ranges_wide");
  try {
    const registerAll = async (url: string, ports: number) => {
      const r = await drive(workers, 4, (i) =>
        registerPortWorker(url, `w${i}`, range(ports), i + 1),
      );
      return r.seconds;
    };
    const registerSeconds = {
      narrow: await registerAll(narrow.coordinator.url, 100),
      wide: await registerAll(wide.coordinator.url, 20_000),
    };
    const creates = (url: string) => createSingles(url, perRound, 16, "ranges");
    // Warm-up: until the JIT has compiled the request path.
    for (const env of [narrow, wide]) await creates(env.coordinator.url);
    const result: CreateComparison = {
      workers,
      database,
      narrow: [],
      wide: [],
      registerSeconds,
    };
    for (let round = 0; round < rounds; round++) {
      // Each size first in every other round, so that the order within a pair favours neither.
      const pair = [
        async () => result.narrow.push(await creates(narrow.coordinator.url)),
        async () => result.wide.push(await creates(wide.coordinator.url)),
      ];
      if (round % 2 === 1) pair.reverse();
      for (const measure of pair) await measure();
    }
    return result;
  } finally {
    await narrow.stop();
    await wide.stop();
  }
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });

/** The registration figures as Markdown. */
export function registrationTable(costs: RegistrationCost[]): string {
  const spread = (values: number[]) => Math.max(...values) / Math.min(...values);
  return [
    "| ports per worker | registrations | median ms | p90 ms | database growth per worker | row bytes |",
    "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ...costs.map(
      (c) =>
        `| ${fmt(c.ports)} | ${c.workers} | ${fmt(c.medianMs, 1)} | ${fmt(c.p90Ms, 1)} | ${fmt(c.bytesPerWorker / 1024, 2)} KiB (over ${c.sizeWorkers}) | ${fmt(c.rowBytes)} |`,
    ),
    "",
    `Spread across sizes (largest / smallest): registration time ${fmt(spread(costs.map((c) => c.medianMs)), 2)}×, database growth ${fmt(spread(costs.map((c) => Math.max(c.bytesPerWorker, 1))), 2)}×, row ${fmt(spread(costs.map((c) => c.rowBytes)), 2)}×.`,
  ].join("\n");
}

/** The create comparison as Markdown. */
export function createTable(creates: CreateComparison): string {
  return [
    `| ${fmt(creates.workers)} workers, ${creates.database} | registering them | creates/s, concurrency 16 (median of ${creates.narrow.length} rounds) | rounds |`,
    "| --- | ---: | ---: | --- |",
    `| 100 ports each | ${fmt(creates.registerSeconds.narrow, 1)} s | ${fmt(median(creates.narrow))} | ${creates.narrow.map((n) => fmt(n)).join(", ")} |`,
    `| 20,000 ports each | ${fmt(creates.registerSeconds.wide, 1)} s | ${fmt(median(creates.wide))} | ${creates.wide.map((n) => fmt(n)).join(", ")} |`,
    "",
    `Ratio 20,000 / 100 ports: ${fmt(median(creates.wide) / median(creates.narrow), 2)} of the medians; ${fmt(median(creates.wide.map((w, i) => w / creates.narrow[i]!)), 2)}, the median of each round's ratio (the pair ran back to back, under the same load).`,
  ].join("\n");
}

/**
 * Both measurements, printed as each ends. BENCH_RANGE_WORKERS (registrations timed per size,
 * 50), BENCH_RANGE_SIZE_WORKERS (registrations per size for the database growth, 1,000),
 * BENCH_RANGE_FLEET (1,000), BENCH_RANGE_ROUNDS (5) and BENCH_RANGE_CREATES (creates per round,
 * 2,000) change the counts; BENCH_RANGE_FLEET=0 skips the creates. BENCH_RANGE_EMBEDDED=1
 * measures the creates alone, on the embedded database.
 */
export async function printPortRangeFigures(): Promise<void> {
  const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback);
  if (process.env.BENCH_RANGE_EMBEDDED === "1") {
    const creates = await createsByRangeSize(
      env("BENCH_RANGE_FLEET", 1000),
      env("BENCH_RANGE_ROUNDS", 5),
      env("BENCH_RANGE_CREATES", 2000),
      "embedded",
    );
    console.log(createTable(creates));
    return;
  }
  const costs = await registrationCosts(
    env("BENCH_RANGE_WORKERS", 50),
    env("BENCH_RANGE_SIZE_WORKERS", 1000),
  );
  console.log(registrationTable(costs));
  if (env("BENCH_RANGE_FLEET", 1000) === 0) return;
  console.log("");
  const creates = await createsByRangeSize(
    env("BENCH_RANGE_FLEET", 1000),
    env("BENCH_RANGE_ROUNDS", 5),
    env("BENCH_RANGE_CREATES", 2000),
  );
  console.log(createTable(creates));
}
