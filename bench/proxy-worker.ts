/**
 * The proxy worker under test in `bench:proxy`: `src/proxy/main.ts` in a process of its own,
 * configured by environment as an operator runs it (`npm run worker`), pinned to the proxy's
 * core, on a loopback address of its own, with the coordinator it registers with.
 */
import { randomBytes } from "node:crypto";
import path from "node:path";
import { MANAGER, REGISTRATION, mutate } from "./harness.js";
import { PROXY_CORE, listening, spawnPinned, tempDir } from "./proxy-processes.js";
import { request, sleep } from "./support.js";

export interface WorkerProcess {
  pid: number;
  id: string;
  name: string;
  host: string;
  opsUrl: string;
  stop(): Promise<void>;
}

/** A loopback address nobody else on the machine is likely to use (127.x.y.z). */
export function loopbackAddress(): string {
  const [a, b, c] = randomBytes(3);
  return `127.${(a! % 200) + 20}.${b}.${(c! % 250) + 2}`;
}

/**
 * Starts a worker and waits until it is ready and the coordinator knows its id. `env` adds or
 * overrides settings (FRONTEND_MODE, PORT_RANGE, …); `core` pins it (default the proxy's core).
 */
export async function startWorkerProcess(
  coordinatorUrl: string,
  env: Record<string, string>,
  options: { core?: string; name?: string; host?: string; dataDir?: string } = {},
): Promise<WorkerProcess> {
  const host = options.host ?? loopbackAddress();
  const name = options.name ?? `bench-${randomBytes(4).toString("hex")}`;
  const opsPort = 19999;
  const { child, stop } = spawnPinned(
    `worker ${name}`,
    options.core ?? PROXY_CORE,
    process.execPath,
    [
      // Where the worker's time goes: a V8 CPU profile per thread, written when it exits.
      ...(process.env.BENCH_PROXY_PROFILE_DIR
        ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROXY_PROFILE_DIR}`]
        : []),
      "--import",
      "tsx",
      "src/proxy/main.ts",
    ],
    {
      env: {
        ...process.env,
        COORDINATOR_URL: coordinatorUrl,
        REGISTRATION_TOKEN: REGISTRATION,
        WORKER_NAME: name,
        BIND_HOST: host,
        ADVERTISED_HOST: host,
        OPS_PORT: String(opsPort),
        DATA_DIR: options.dataDir ?? path.join(tempDir("appproxy-bench-worker-"), "data"),
        LOG_LEVEL: "error",
        ...env,
      },
    },
  );
  child.stdout!.resume();
  const opsUrl = `http://${host}:${opsPort}`;
  await listening(`worker ${name} ops`, opsPort, host);
  const deadline = Date.now() + 60_000;
  let id: string | undefined;
  for (;;) {
    const ready = await request(opsUrl, "GET", "/readyz", "").catch(() => undefined);
    if (ready?.status === 200) {
      const workers = await request(coordinatorUrl, "GET", "/workers", MANAGER);
      const items = (JSON.parse(workers.body) as { items: Array<{ id: string; name: string }> })
        .items;
      id = items.find((w) => w.name === name)?.id;
      if (id) break;
    }
    if (child.exitCode !== null) throw new Error(`worker ${name} exited with ${child.exitCode}`);
    if (Date.now() > deadline) throw new Error(`worker ${name} was not ready within 60 s`);
    await sleep(50);
  }
  return { pid: child.pid!, id, name, host, opsUrl, stop };
}

/** An open-to-public HTTP route on `port` of `worker` to the upstream, served once answered. */
export async function publicRoute(
  coordinatorUrl: string,
  worker: WorkerProcess,
  port: number,
  upstreamPort: number,
): Promise<string> {
  const { body } = await mutate(coordinatorUrl, "POST", "/routes?wait=applied", {
    session_id: `bench-${port}`,
    app: "bench",
    worker_id: worker.id,
    port,
    upstreams: [{ host: "127.0.0.1", port: upstreamPort, weight: 1 }],
    open_to_public: true,
  });
  return (body as { id: string }).id;
}
