/**
 * A port-mode proxy worker in a child process (test/proxy/support.ts's spawnWorker) on a
 * loopback address of its own, so that its fixed port range collides with nobody's.
 */
import { randomBytes } from "node:crypto";
import { spawnWorker, waitReady, type WorkerProcess } from "../support.js";

export interface PortWorker extends WorkerProcess {
  readonly portRange: [number, number];
  readonly pid: number;
}

/** 127.x.y.z with x ≥ 20: away from the 127.0.0.x addresses the other worker tests use. */
export function loopbackAddress(): string {
  const [a, b, c] = randomBytes(3);
  return `127.${(a! % 200) + 20}.${b}.${(c! % 250) + 2}`;
}

/** Starts a worker serving `ports` ports from 20000 up and waits until it is ready. */
export async function startPortWorker(
  coordinatorUrl: string,
  options: { ports?: number; nodeArgs?: string[]; dataDir?: string } = {},
): Promise<PortWorker> {
  const host = loopbackAddress();
  const portRange: [number, number] = [20000, 20000 + (options.ports ?? 4) - 1];
  const worker = await spawnWorker(
    {
      COORDINATOR_URL: coordinatorUrl,
      WORKER_NAME: `w-${randomBytes(4).toString("hex")}`,
      BIND_HOST: host,
      FRONTEND_MODE: "port",
      PORT_RANGE: `${portRange[0]}:${portRange[1]}`,
    },
    {
      ...(options.dataDir === undefined ? {} : { dataDir: options.dataDir }),
      ...(options.nodeArgs === undefined ? {} : { nodeArgs: options.nodeArgs }),
    },
  );
  await waitReady(worker, 120_000);
  return Object.assign(worker, { portRange, pid: worker.child.pid! });
}
