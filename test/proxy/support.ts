import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { WebSocketServer } from "ws";
import type { ProxyWorker } from "../../src/proxy/worker.js";
import { TOKENS, waitFor } from "../support/harness.js";

/** An app behind the workers: HTTP answers naming what it saw, a WebSocket echo, a TCP echo. */
export interface UpstreamApp {
  httpPort: number;
  tcpPort: number;
  /** The headers of every HTTP request and upgrade the app received, in order. */
  seen: http.IncomingHttpHeaders[];
  close(): Promise<void>;
}

export async function startUpstreamApp(name = "app"): Promise<UpstreamApp> {
  const seen: http.IncomingHttpHeaders[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.headers);
    const body = JSON.stringify({ app: name, url: req.url, headers: req.headers });
    res.writeHead(200, { "content-type": "application/json", "x-app": name });
    res.end(body);
  });
  const sockets = new WebSocketServer({ server });
  sockets.on("connection", (socket, req) => {
    seen.push(req.headers);
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  });
  const tcp = net.createServer((socket) => {
    socket.on("error", () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  return {
    httpPort: (server.address() as net.AddressInfo).port,
    tcpPort: (tcp.address() as net.AddressInfo).port,
    seen,
    close: async () => {
      for (const client of sockets.clients) client.terminate();
      server.closeAllConnections();
      await new Promise<void>((resolve) => sockets.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await new Promise<void>((resolve) => {
        tcp.close(() => resolve());
      });
    },
  };
}

/** A block of `count` ports free on the loopback addresses the workers bind, found by trying. */
export async function freePortRange(
  hosts: readonly string[],
  count: number,
): Promise<[number, number]> {
  for (let attempt = 0; attempt < 50; attempt += 1) {
    const first = 20_000 + Math.floor(Math.random() * 30_000);
    if (await allFree(hosts, first, first + count - 1)) return [first, first + count - 1];
  }
  throw new Error("no free port range found");
}

async function allFree(hosts: readonly string[], first: number, last: number): Promise<boolean> {
  const servers: net.Server[] = [];
  try {
    for (const host of hosts) {
      for (let port = first; port <= last; port += 1) {
        const server = net.createServer();
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen(port, host, resolve);
        });
        servers.push(server);
      }
    }
    return true;
  } catch {
    return false;
  } finally {
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  }
}

/** A proxy worker run as `npm run worker` does, in a child process, configured by env vars. */
export interface WorkerProcess {
  name: string;
  host: string;
  opsUrl: string;
  dataDir: string;
  child: ChildProcess;
  output: string[];
  /** SIGTERM and wait for the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for the exit. */
  kill(): Promise<void>;
}

export async function spawnWorker(
  env: Record<string, string>,
  /**
   * `nodeArgs` go to Node before the script (e.g. `--inspect=…` for heap checks), `args` to the
   * worker after it (its flags).
   */
  options: { dataDir?: string; nodeArgs?: string[]; args?: string[] } = {},
): Promise<WorkerProcess> {
  const dataDir = options.dataDir ?? mkdtempSync(path.join(tmpdir(), "appproxy-worker-"));
  const host = env.BIND_HOST ?? "127.0.0.1";
  const opsPort = env.OPS_PORT ?? String(await freeOpsPort(host));
  const nodeArgs = options.nodeArgs ?? [];
  const script = ["--import", "tsx", "src/proxy/main.ts", ...(options.args ?? [])];
  const child = spawn(process.execPath, [...nodeArgs, ...script], {
    env: {
      PATH: process.env.PATH ?? "",
      REGISTRATION_TOKEN: TOKENS.registration,
      ADVERTISED_HOST: host,
      DRAIN_S: "2",
      LOG_LEVEL: "warn",
      ...env,
      OPS_PORT: opsPort,
      DATA_DIR: dataDir,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  child.stdout?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<number | null>((resolve) =>
    child.once("exit", (code) => resolve(code)),
  );
  const worker: WorkerProcess = {
    name: env.WORKER_NAME ?? "",
    host,
    opsUrl: `http://${host}:${opsPort}`,
    dataDir,
    child,
    output,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
  return worker;
}

async function freeOpsPort(host: string): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** The worker's /readyz body once it answers 200. */
export async function waitReady(
  worker: WorkerProcess,
  timeoutMs = 45_000,
): Promise<{ coordinator: string; version: number }> {
  const body = await waitFor(
    async () => {
      if (worker.child.exitCode !== null) {
        throw new Error(`worker ${worker.name} exited: ${worker.output.join("")}`);
      }
      try {
        const answer = await fetch(`${worker.opsUrl}/readyz`);
        if (answer.status !== 200) return undefined;
        return (await answer.json()) as { coordinator: string; version: number };
      } catch {
        return undefined;
      }
    },
    timeoutMs,
    `worker ${worker.name} ready`,
  );
  if (body === undefined) throw new Error(`worker ${worker.name} never became ready`);
  return body;
}

/** Waits until an in-process worker holds its stream (it is registered and takes routes). */
export async function untilConnected(worker: ProxyWorker, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    () => worker.status().coordinatorConnected || undefined,
    timeoutMs,
    "the worker to hold its stream",
  );
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Sends `payload` on a fresh TCP connection and resolves with the first `payload.length` bytes back. */
export function tcpRoundTrip(host: string, port: number, payload: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const chunks: Buffer[] = [];
    let length = 0;
    socket.once("error", reject);
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= payload.length) {
        socket.destroy();
        resolve(Buffer.concat(chunks));
      }
    });
    socket.once("close", () => {
      if (length < payload.length) reject(new Error(`connection closed after ${length} bytes`));
    });
    socket.write(payload);
  });
}
