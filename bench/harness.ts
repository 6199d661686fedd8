/**
 * The coordinator and its database for the stream benchmarks, each registered for cleanup as
 * soon as it exists, so that a failure half-way leaves nothing running and no database behind.
 */
import { spawn } from "node:child_process";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { evaluateAfterGc } from "../test/support/devtools.js";
import { deferCleanup } from "./cleanup.js";
import {
  BENCH_TOKENS,
  START_NODE_FLAGS,
  freePort,
  freshDatabase,
  request,
  sleep,
} from "./support.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export const MANAGER = BENCH_TOKENS.MANAGER_TOKENS;
export const REGISTRATION = BENCH_TOKENS.REGISTRATION_TOKENS;
export const ADMIN = BENCH_TOKENS.ADMIN_TOKENS;

export interface BenchDatabase {
  url: string;
  /** A plain connection of the bench's own, for reading what the coordinator recorded. */
  sql: pg.Client;
  drop(): Promise<void>;
}

export async function useFreshDatabase(name: string): Promise<BenchDatabase> {
  const db = await freshDatabase(name);
  const sql = new pg.Client({ connectionString: db.url });
  const drop = deferCleanup(`database ${name}`, async () => {
    await sql.end().catch(() => undefined);
    await db.drop();
  });
  await sql.connect();
  return { url: db.url, sql, drop };
}

export interface CoordinatorProcess {
  url: string;
  pid: number;
  /** The inspector's port, when started with `inspect` (for memoryAfterGc). */
  inspectPort: number | undefined;
  stop(): Promise<void>;
}

/**
 * Starts `src/main.ts` in its own process (as bench/support.ts does) and waits until it is
 * ready; killed on any failure, and at cleanup if still running. Its error log lines are shown
 * on stderr.
 */
export async function startCoordinator(
  env: Record<string, string>,
  options: { inspect?: boolean } = {},
): Promise<CoordinatorProcess> {
  const port = await freePort();
  const inspectPort = options.inspect ? await freePort() : undefined;
  const nodeArgs = [...START_NODE_FLAGS];
  if (inspectPort) nodeArgs.push(`--inspect=127.0.0.1:${inspectPort}`);
  // BENCH_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof", profiles the coordinator.
  nodeArgs.push(...(process.env.BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean));
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "src/main.ts"], {
    cwd: ROOT,
    env: {
      ...process.env,
      ...BENCH_TOKENS,
      PORT: String(port),
      HOST: "127.0.0.1",
      LOG_LEVEL: "warn",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  // The inspector's own notices are not news; anything else on stderr is passed on.
  readline.createInterface({ input: child.stderr! }).on("line", (line) => {
    if (/^(Debugger (listening|attached|ending)|For help, see)/.test(line)) return;
    console.error(`coordinator: ${line}`);
  });
  // Its log is JSON lines on stdout: errors are passed on (a few), the rest is dropped.
  let errorsShown = 0;
  readline.createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.includes('"level":"error"') && errorsShown++ < 20) {
      console.error(`coordinator: ${line}`);
    }
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = deferCleanup("coordinator process", async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    await exited;
    clearTimeout(killer);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const res = await request(url, "GET", "/readyz", "");
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`coordinator exited with ${child.exitCode}`);
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error("coordinator did not become ready within 60 s");
    }
    await sleep(100);
  }
  return { url, pid: child.pid!, inspectPort, stop };
}

export interface ProcessMemory {
  rss: number;
  heapUsed: number;
  external: number;
}

/**
 * Collects garbage in a process started with `--inspect` (over the DevTools protocol, with the
 * `ws` client), then reads its process.memoryUsage(): memory figures without the garbage that
 * happened to be waiting for the next collection.
 */
export async function memoryAfterGc(inspectPort: number): Promise<ProcessMemory> {
  const usage = JSON.parse(
    await evaluateAfterGc<string>(
      `http://127.0.0.1:${inspectPort}`,
      "JSON.stringify(process.memoryUsage())",
      500,
    ),
  ) as ProcessMemory;
  return { rss: usage.rss, heapUsed: usage.heapUsed, external: usage.external };
}

/** A mutation through the API that must succeed; returns the parsed body and the version. */
export async function mutate(
  url: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; version: number; body: unknown }> {
  const res = await request(url, method, path, MANAGER, body);
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${res.body}`);
  return {
    status: res.status,
    version: Number(res.headers["x-routing-version"]),
    body: res.body ? (JSON.parse(res.body) as unknown) : undefined,
  };
}

/** The routing version the coordinator has committed. */
export async function headVersion(db: BenchDatabase): Promise<number> {
  const { rows } = await db.sql.query<{ version: string }>(
    "SELECT version FROM routing_state WHERE id = 1",
  );
  return Number(rows[0]!.version);
}
