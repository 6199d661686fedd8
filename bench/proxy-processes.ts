/**
 * The processes of `bench:proxy`: the upstream app, the load generator and the peers (nginx,
 * configurable-http-proxy), each pinned with `taskset` (the proxy under test on one core, the
 * rest on the other) and each registered for cleanup as soon as it exists.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import readline from "node:readline";
import { fileURLToPath } from "node:url";
import { deferCleanup } from "./cleanup.js";
import { ensureDebianPackage } from "./debian-package.js";
import { freePort, sleep } from "./support.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** The proxy under test runs alone on this core; load generator and upstream on the other. */
export const PROXY_CORE = process.env.BENCH_PROXY_CORE ?? "0";
export const LOAD_CORE = process.env.BENCH_LOAD_CORE ?? "1";

export const CHP_VERSION = "5.3.0";

export interface Started {
  /** The process whose CPU is the proxy's (with its children, for nginx's worker). */
  pid: number;
  stop(): Promise<void>;
}

/** Spawns `command` pinned to `core`; killed at cleanup (SIGTERM, then SIGKILL after 10 s). */
export function spawnPinned(
  what: string,
  core: string,
  command: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; ipc?: boolean; cwd?: string } = {},
): { child: ChildProcess; stop(): Promise<void> } {
  const child = spawn("taskset", ["-c", core, command, ...args], {
    cwd: options.cwd ?? ROOT,
    env: options.env ?? process.env,
    stdio: options.ipc ? ["pipe", "pipe", "pipe", "ipc"] : ["pipe", "pipe", "pipe"],
  });
  readline.createInterface({ input: child.stderr! }).on("line", (line) => {
    console.error(`${what}: ${line}`);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = deferCleanup(what, async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(killer);
  });
  return { child, stop };
}

/** The first line a child prints on stdout, parsed as JSON. */
function firstJsonLine<T>(what: string, child: ChildProcess, timeoutMs = 60_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout! });
    const timer = setTimeout(() => reject(new Error(`${what} said nothing`)), timeoutMs);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve(JSON.parse(line) as T);
    });
    child.once("exit", (code) => reject(new Error(`${what} exited with ${code}`)));
  });
}

/** Polls until something accepts TCP connections on `port`. */
export async function listening(what: string, port: number, host = "127.0.0.1"): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, host);
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${host}:${port}`);
    await sleep(50);
  }
}

const tsx = (script: string) => ["--import", "tsx", path.join(ROOT, "bench", script)];

export async function startUpstream(): Promise<Started & { port: number }> {
  const { child, stop } = spawnPinned(
    "upstream",
    LOAD_CORE,
    process.execPath,
    tsx("proxy-upstream.ts"),
  );
  const { port } = await firstJsonLine<{ port: number }>("upstream", child);
  return { pid: child.pid!, port, stop };
}

export interface LoadGenerator {
  pid: number;
  call<T>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  stop(): Promise<void>;
}

export async function startLoadGenerator(): Promise<LoadGenerator> {
  const { child, stop } = spawnPinned(
    "load generator",
    LOAD_CORE,
    process.execPath,
    tsx("proxy-load.ts"),
    { ipc: true },
  );
  const waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  child.on("message", (raw) => {
    const m = raw as { id: number; ok: boolean; result?: unknown; error?: string };
    const waiter = waiting.get(m.id);
    waiting.delete(m.id);
    if (m.ok) waiter?.resolve(m.result);
    else waiter?.reject(new Error(`load generator: ${m.error}`));
  });
  child.once("exit", (code, signal) => {
    for (const w of waiting.values())
      w.reject(new Error(`load generator exited (${code ?? signal})`));
    waiting.clear();
  });
  let nextId = 1;
  return {
    pid: child.pid!,
    call: <T>(cmd: string, args: Record<string, unknown> = {}) =>
      new Promise<T>((resolve, reject) => {
        const id = nextId++;
        waiting.set(id, { resolve: (v) => resolve(v as T), reject });
        child.send({ id, cmd, args });
      }),
    stop,
  };
}

/** A temporary directory removed at cleanup. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  deferCleanup(`directory ${dir}`, () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * nginx from Debian as a fair peer: one worker process, upstream keep-alive 64, HTTP/1.1 to the
 * upstream with an empty `Connection` header (WebSocket upgrades pass theirs on), its own
 * config, pid and log files, not daemonised.
 */
export async function startNginx(upstreamPort: number): Promise<Started & { port: number }> {
  ensureDebianPackage("/usr/sbin/nginx", "nginx");
  const dir = tempDir("appproxy-bench-nginx-");
  const port = await freePort();
  writeFileSync(
    path.join(dir, "nginx.conf"),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 19900; }
worker_rlimit_nofile 20000;
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' ''; }
  upstream app { server 127.0.0.1:${upstreamPort}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_read_timeout 3600s;
    }
  }
}
`,
  );
  const { child, stop } = spawnPinned("nginx", PROXY_CORE, "/usr/sbin/nginx", [
    "-p",
    dir,
    "-c",
    path.join(dir, "nginx.conf"),
    "-e",
    path.join(dir, "error.log"),
    "-g",
    "daemon off;",
  ]);
  await listening("nginx", port);
  return { pid: child.pid!, port, stop };
}

/**
 * configurable-http-proxy (JupyterHub's proxy) from npm, installed on first use into a
 * directory under the system's temp directory and kept there for later runs.
 */
export function installChp(): string {
  const dir = path.join(os.tmpdir(), `appproxy-bench-chp-${CHP_VERSION}`);
  const bin = path.join(
    dir,
    "node_modules",
    "configurable-http-proxy",
    "bin",
    "configurable-http-proxy",
  );
  if (!existsSync(bin)) {
    console.error(`installing configurable-http-proxy ${CHP_VERSION} into ${dir}`);
    const npm = spawnSync(
      "npm",
      [
        "install",
        "--prefix",
        dir,
        "--no-audit",
        "--no-fund",
        "--no-save",
        `configurable-http-proxy@${CHP_VERSION}`,
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    if (npm.status !== 0 || !existsSync(bin))
      throw new Error("could not install configurable-http-proxy");
  }
  return bin;
}

export async function startChp(upstreamPort: number): Promise<Started & { port: number }> {
  const bin = installChp();
  const port = await freePort();
  const apiPort = await freePort();
  const { child, stop } = spawnPinned(
    "configurable-http-proxy",
    PROXY_CORE,
    process.execPath,
    [
      bin,
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--api-ip",
      "127.0.0.1",
      "--api-port",
      String(apiPort),
      "--default-target",
      `http://127.0.0.1:${upstreamPort}`,
      "--log-level",
      "error",
    ],
    { env: { ...process.env, CONFIGPROXY_AUTH_TOKEN: "bench-chp-token" } },
  );
  child.stdout!.resume();
  await listening("configurable-http-proxy", port);
  return { pid: child.pid!, port, stop };
}

/** The process and its descendants (nginx's worker is a child of its master). */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let at = 0; at < all.length; at++) {
    const taskDir = `/proc/${all[at]}/task`;
    try {
      for (const tid of readdirSync(taskDir)) {
        const children = readFileSync(`${taskDir}/${tid}/children`, "utf8").trim();
        if (children) all.push(...children.split(/\s+/).map(Number));
      }
    } catch {
      // the process has gone
    }
  }
  return all;
}
