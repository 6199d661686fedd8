/**
 * A proxy worker started in the test's own process (startProxyWorker), on a loopback address of
 * its own, with a fresh DATA_DIR and activity reported every 50 ms: for the tests that look at
 * what the worker decides rather than at how its process starts and stops. Port mode over
 * `ports` free ports unless `env` says otherwise (WILDCARD_DOMAIN and `ports: 0`).
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger } from "../../../src/logger.js";
import { parseProxySettings } from "../../../src/proxy/settings.js";
import { startProxyWorker, type ProxyWorker } from "../../../src/proxy/worker.js";
import { TOKENS } from "../../support/harness.js";
import { freePortRange, removeDir, untilConnected } from "../support.js";
import { loopbackAddress } from "./port-worker.js";

export interface InProcessWorker {
  readonly worker: ProxyWorker;
  readonly host: string;
  /** The port range of port mode; [0, -1] without one. */
  readonly portRange: [number, number];
  /** The id the coordinator gave it. */
  readonly workerId: string;
  /** Stops the worker (SIGTERM's order) and removes its DATA_DIR. */
  close(): Promise<void>;
}

/** Starts the worker and resolves once it holds its stream to the coordinator. */
export async function startInProcessWorker(
  coordinatorUrl: string,
  options: { name: string; host?: string; ports?: number; env?: Record<string, string> },
): Promise<InProcessWorker> {
  const host = options.host ?? loopbackAddress();
  const ports = options.ports ?? 4;
  const portRange: [number, number] = ports > 0 ? await freePortRange([host], ports) : [0, -1];
  const dataDir = mkdtempSync(path.join(tmpdir(), "appproxy-worker-"));
  const parsed = parseProxySettings({
    COORDINATOR_URL: coordinatorUrl,
    REGISTRATION_TOKEN: TOKENS.registration,
    WORKER_NAME: options.name,
    BIND_HOST: host,
    ...(ports > 0 ? { PORT_RANGE: `${portRange[0]}:${portRange[1]}` } : {}),
    OPS_PORT: "0",
    DATA_DIR: dataDir,
    DRAIN_S: "1",
    ...options.env,
  });
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  const worker = await startProxyWorker(parsed.settings, {
    logger: createLogger("error", true),
    client: { activityIntervalMs: 50 },
  });
  const close = async (): Promise<void> => {
    await worker.stop();
    removeDir(dataDir);
  };
  try {
    // Bound is not yet registered: routes are placed on it once its stream is up.
    await untilConnected(worker, 30_000);
  } catch (error) {
    await close();
    throw error;
  }
  const workerId = worker.status().workerId;
  if (workerId === undefined) throw new Error(`worker ${options.name} has no id`);
  return { worker, host, portRange, workerId, close };
}
