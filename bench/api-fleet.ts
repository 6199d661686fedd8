/**
 * What both parts of bench:api drive: a coordinator on a fresh database, port-mode workers
 * registered over HTTP, and single route creations at a given concurrency.
 */
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { BENCH_TOKENS, drive, freshDatabase, request, startCoordinatorProcess } from "./support.js";

const M = BENCH_TOKENS.MANAGER_TOKENS;
const R = BENCH_TOKENS.REGISTRATION_TOKENS;

/**
 * A coordinator on a fresh database, its reaper quiet: no worker streams here, so the registered
 * workers must stay eligible for the whole run.
 */
export async function startQuietCoordinator(name: string) {
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

/** The same on a fresh embedded database (PGlite) in a folder of its own. */
export async function startQuietEmbeddedCoordinator(name: string) {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), `${name}-`));
  const coordinator = await startCoordinatorProcess({
    DATA_DIR: dataDir,
    WORKER_LOST_AFTER_S: "86400",
  });
  return {
    coordinator,
    stop: async () => {
      await coordinator.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Registers a port-mode worker of the ports `range`; `host` numbers its advertised address. */
export async function registerPortWorker(
  url: string,
  name: string,
  range: [number, number],
  host: number,
): Promise<void> {
  const res = await request(url, "POST", "/workers/register", R, {
    name,
    advertised_host: `10.${(host >> 16) & 255}.${(host >> 8) & 255}.${host & 255}`,
    frontend_mode: "port",
    port_range: range,
  });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${res.body}`);
}

/** The body of the bench's `i`-th route of `prefix`: a Jupyter session, placed anywhere. */
export function benchRoute(prefix: string, i: number) {
  return {
    session_id: `${prefix}-${i}`,
    app: "jupyter",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
  };
}

/** `total` single creates, `concurrency` in flight: creates per second; throws if one failed. */
export async function createSingles(
  url: string,
  total: number,
  concurrency: number,
  prefix = "bench",
): Promise<number> {
  let failures = 0;
  const r = await drive(total, concurrency, async (i) => {
    const res = await request(url, "POST", "/routes", M, benchRoute(prefix, i));
    if (res.status !== 201 && failures++ === 0) console.error(res.status, res.body);
  });
  if (failures) throw new Error(`${failures} creates failed`);
  return r.perSecond;
}

export const median = (values: number[]) => [...values].sort((a, b) => a - b)[values.length >> 1]!;
