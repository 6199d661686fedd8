/**
 * A port-mode proxy worker started in the test's own process (startProxyWorker), on a loopback
 * address of its own, with a fresh DATA_DIR and activity reported every 50 ms: for the tests that
 * look at what the worker decides rather than at how its process starts and stops.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createLogger } from "../../../src/logger.js";
import { parseProxySettings } from "../../../src/proxy/settings.js";
import { startProxyWorker, type ProxyWorker } from "../../../src/proxy/worker.js";
import { TOKENS, waitFor } from "../../support/harness.js";
import { freePortRange, removeDir } from "../support.js";
import { loopbackAddress } from "./port-worker.js";

export interface InProcessWorker {
  readonly worker: ProxyWorker;
  readonly host: string;
  readonly portRange: [number, number];
  /** The id the coordinator gave it. */
  readonly workerId: string;
  /** Stops the worker (SIGTERM's order) and removes its DATA_DIR. */
  close(): Promise<void>;
}

/** Starts the worker and resolves once it registered with the coordinator at `coordinatorUrl`. */
export async function startInProcessWorker(
  coordinatorUrl: string,
  options: { name: string; host?: string; ports?: number; env?: Record<string, string> },
): Promise<InProcessWorker> {
  const host = options.host ?? loopbackAddress();
  const portRange = await freePortRange([host], options.ports ?? 4);
  const dataDir = mkdtempSync(path.join(tmpdir(), "appproxy-worker-"));
  const parsed = parseProxySettings({
    COORDINATOR_URL: coordinatorUrl,
    REGISTRATION_TOKEN: TOKENS.registration,
    WORKER_NAME: options.name,
    BIND_HOST: host,
    PORT_RANGE: `${portRange[0]}:${portRange[1]}`,
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
  const workerId = await waitFor(
    () => worker.status().workerId ?? "",
    30_000,
    `worker ${options.name} to register`,
  ).catch(async (error: unknown) => {
    await worker.stop();
    removeDir(dataDir);
    throw error;
  });
  return {
    worker,
    host,
    portRange,
    workerId,
    close: async () => {
      await worker.stop();
      removeDir(dataDir);
    },
  };
}
