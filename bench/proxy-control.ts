/**
 * The control-plane side of `bench:proxy`: how soon a new route is reachable through a worker
 * among many connected ones, and how long applying a 10,000-route snapshot holds a worker's
 * event loop.
 */
import { spawn } from "node:child_process";
import http from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { startFleet } from "./fleet.js";
import {
  ADMIN,
  MANAGER,
  REGISTRATION,
  mutate,
  startCoordinator,
  useFreshDatabase,
} from "./harness.js";
import { PROXY_CORE, tempDir } from "./proxy-processes.js";
import { loopbackAddress, type WorkerProcess } from "./proxy-worker.js";
import { nowMs, request, sleep, summarize, type Summary } from "./support.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** GETs `url` back to back over one keep-alive connection until one answers 200. */
async function firstOk(url: string, agent: http.Agent, deadline: number): Promise<number> {
  for (;;) {
    const status = await new Promise<number>((resolve) => {
      const req = http.get(url, { agent }, (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      });
      req.on("error", () => resolve(0));
    });
    if (status === 200) return nowMs();
    if (Date.now() > deadline) throw new Error(`${url} never answered 200`);
  }
}

export interface Reachable {
  workers: number;
  summary: Summary;
}

/**
 * With `fleetSize` simulated workers connected beside `worker`, creates `samples` routes on it
 * one after another: POST /routes sent → the first 200 through the worker, polled back to back.
 * Each route is deleted again (wait=applied) before the next.
 */
export async function timeToReachable(
  coordinatorUrl: string,
  worker: WorkerProcess,
  ports: [number, number],
  upstreamPort: number,
  fleetSize: number,
  samples: number,
): Promise<Reachable> {
  const fleet = await startFleet();
  try {
    if (fleetSize > 0) {
      await fleet.call("startClients", {
        url: coordinatorUrl,
        registrationToken: REGISTRATION,
        count: fleetSize,
        prefix: "reach",
        portRange: [40000, 40099],
      });
    }
    const status = JSON.parse((await request(coordinatorUrl, "GET", "/status", ADMIN)).body) as {
      workers: { connected: number };
    };
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const times: number[] = [];
    for (let i = 0; i < samples; i++) {
      const port = ports[0] + (i % (ports[1] - ports[0] + 1));
      const url = `http://${worker.host}:${port}/`;
      const sentAt = nowMs();
      const created = request(coordinatorUrl, "POST", "/routes", MANAGER, {
        session_id: `reach-${i}`,
        app: "bench",
        worker_id: worker.id,
        port,
        upstreams: [{ host: "127.0.0.1", port: upstreamPort, weight: 1 }],
        open_to_public: true,
      });
      const reachedAt = await firstOk(url, agent, Date.now() + 30_000);
      const answer = await created;
      if (answer.status !== 201) throw new Error(`POST /routes: ${answer.status} ${answer.body}`);
      times.push(reachedAt - sentAt);
      const { id } = JSON.parse(answer.body) as { id: string };
      await mutate(coordinatorUrl, "DELETE", `/routes/${id}?wait=applied`);
    }
    agent.destroy();
    return { workers: status.workers.connected, summary: summarize(times) };
  } finally {
    await fleet.stop();
  }
}

export interface SnapshotHold {
  routes: number;
  snapshots: number;
  servedAfterMs: number;
  loopMaxMs: number;
  loopP99Ms: number;
  /** The longest hold while the worker started (not part of the target). */
  startupLoopMaxMs: number;
  longestTimerGapMs: number;
  applySecondsSum: number;
  applyCount: number;
}

/** Runs bench/proxy-snapshot-probe.ts pinned to the proxy's core; its one JSON line. */
function probe(env: Record<string, string>): Promise<Omit<SnapshotHold, "snapshots">> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "taskset",
      [
        "-c",
        PROXY_CORE,
        process.execPath,
        "--import",
        "tsx",
        path.join(ROOT, "bench", "proxy-snapshot-probe.ts"),
      ],
      { cwd: ROOT, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.once("exit", (code) => {
      const line = out.trim().split("\n").pop() ?? "";
      if (code === 0 && line.startsWith("{")) resolve(JSON.parse(line) as never);
      else reject(new Error(`snapshot probe exited with ${code}: ${out}`));
    });
  });
}

/**
 * A wildcard-mode worker registers and stops; 10,000 routes are placed on it while it is away
 * and the coordinator keeps one version of change log (so its resume is answered with a
 * snapshot, not a diff); then it comes back in the probe, which watches its event loop.
 */
export async function snapshotHold(routeCount: number): Promise<SnapshotHold> {
  const db = await useFreshDatabase("appproxy_bench_proxy_snapshot");
  const coordinator = await startCoordinator({
    DATABASE_URL: db.url,
    CHANGELOG_RETENTION: "1",
    REAPER_CRON: "*/1 * * * * *",
    WORKER_LOST_AFTER_S: "86400",
  });
  try {
    const name = "snapshot-probe";
    const host = loopbackAddress();
    const env = {
      COORDINATOR_URL: coordinator.url,
      REGISTRATION_TOKEN: REGISTRATION,
      WORKER_NAME: name,
      BIND_HOST: host,
      ADVERTISED_HOST: host,
      FRONTEND_MODE: "wildcard",
      WILDCARD_DOMAIN: "apps.bench",
      WILDCARD_TRAFFIC_PORT: "20080",
      OPS_PORT: "19999",
      DATA_DIR: path.join(tempDir("appproxy-bench-snapshot-"), "data"),
      DRAIN_S: "0",
      LOG_LEVEL: "error",
    };
    await probe({ ...env, BENCH_TARGET_VERSION: "0" });
    const workers = JSON.parse(
      (await request(coordinator.url, "GET", "/workers", MANAGER)).body,
    ) as {
      items: Array<{ id: string; name: string; applied_version: number }>;
    };
    const registered = workers.items.find((w) => w.name === name)!;
    let head = 0;
    // Two versions at least, so that the change log can forget the first (CHANGELOG_RETENTION=1).
    const batch = Math.max(1, Math.min(1000, Math.floor(routeCount / 2)));
    for (let at = 0; at < routeCount; at += batch) {
      const { version } = await mutate(coordinator.url, "POST", "/routes/batch", {
        routes: Array.from({ length: Math.min(batch, routeCount - at) }, (_, i) => ({
          session_id: `snap-${at + i}`,
          app: "jupyter",
          worker_id: registered.id,
          upstreams: [{ host: "127.0.0.1", port: 8888, weight: 1 }],
        })),
      });
      head = version;
    }
    // The change log must have forgotten what the worker would resume from.
    const deadline = Date.now() + 30_000;
    for (;;) {
      const status = JSON.parse((await request(coordinator.url, "GET", "/status", ADMIN)).body) as {
        routing: { changelog_min_version: number };
      };
      if (status.routing.changelog_min_version > registered.applied_version + 1) break;
      if (Date.now() > deadline) throw new Error("the change log was not trimmed within 30 s");
      await sleep(200);
    }
    const framesOut = async () => {
      const text = (await request(coordinator.url, "GET", "/metrics", "")).body;
      const line = text
        .split("\n")
        .find(
          (l) =>
            l.startsWith("appproxy_stream_frames_total") &&
            l.includes('type="snapshot"') &&
            l.includes('direction="out"'),
        );
      return line ? Number(line.slice(line.lastIndexOf(" ") + 1)) : 0;
    };
    const before = await framesOut();
    const result = await probe({ ...env, BENCH_TARGET_VERSION: String(head) });
    return { ...result, snapshots: (await framesOut()) - before };
  } finally {
    await coordinator.stop();
    await db.drop();
  }
}
