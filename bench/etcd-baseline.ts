/**
 * etcd 3.4 as a baseline: a local single-member etcd (fsync on, as in production) spoken to over
 * its v3 HTTP/JSON gateway, so that no client library is needed. Each simulated worker watches
 * its own key prefix; a change is a put under that prefix.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtemp, open, rm } from "node:fs/promises";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { deferCleanup } from "./cleanup.js";
import { ensureDebianPackage } from "./debian-package.js";
import { freePort, sleep } from "./support.js";

export interface EtcdServer {
  url: string;
  pid: number;
  version: string;
  stop(): Promise<void>;
}

/** The etcd version on PATH, or undefined where there is none. */
export function etcdVersion(): string | undefined {
  const probe = spawnSync("etcd", ["--version"], { encoding: "utf8" });
  if (probe.error || probe.status !== 0) return undefined;
  return /etcd Version:\s*(\S+)/.exec(probe.stdout)?.[1] ?? "unknown";
}

/** Installs etcd from Debian's packages where it is not on PATH. */
export function ensureEtcd(): void {
  if (etcdVersion() === undefined) ensureDebianPackage("/usr/bin/etcd", "etcd-server");
}

/** Starts etcd on two free loopback ports with a temporary data directory, removed at stop. */
export async function startEtcd(): Promise<EtcdServer> {
  ensureEtcd();
  const version = etcdVersion();
  if (!version) {
    throw new Error(
      "etcd is not on PATH: apt-get update && apt-get install -y etcd-server etcd-client",
    );
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), "appproxy-bench-etcd-"));
  const removeDir = deferCleanup("etcd data directory", () =>
    rm(dir, { recursive: true, force: true }),
  );
  const clientPort = await freePort();
  const peerPort = await freePort();
  const url = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const log = await open(path.join(dir, "etcd.log"), "w");
  const child = spawn(
    "etcd",
    [
      "--name=bench",
      `--data-dir=${path.join(dir, "data")}`,
      `--listen-client-urls=${url}`,
      `--advertise-client-urls=${url}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=bench=${peer}`,
      "--logger=zap",
      "--log-level=warn",
    ],
    { stdio: ["ignore", log.fd, log.fd] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stopProcess = deferCleanup("etcd", async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(killer);
    }
    await log.close();
  });
  const stop = async () => {
    await stopProcess();
    await removeDir();
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const health = await etcdJson(url, "/health", undefined, "GET");
      if ((health as { health?: string }).health === "true") break;
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(`etcd did not start (see its log in ${dir})`);
    }
    await sleep(100);
  }
  return { url, pid: child.pid!, version, stop };
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

/** One JSON request to the gateway (no Authorization header: etcd would read it as a token). */
export function etcdJson(
  base: string,
  pathname: string,
  body: unknown,
  method = "POST",
): Promise<unknown> {
  const url = new URL(pathname, base);
  const data = body === undefined ? undefined : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method,
        headers: data
          ? { "content-type": "application/json", "content-length": Buffer.byteLength(data) }
          : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          if ((res.statusCode ?? 0) >= 300) {
            reject(new Error(`etcd ${pathname}: ${res.statusCode} ${text}`));
            return;
          }
          try {
            resolve(JSON.parse(text) as unknown);
          } catch {
            reject(new Error(`etcd ${pathname}: not JSON: ${text.slice(0, 200)}`));
          }
        });
      },
    );
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

export const b64 = (text: string) => Buffer.from(text, "utf8").toString("base64");

/** The prefix watched by worker `index`; keys of other workers never fall under it. */
export function workerPrefix(index: number): string {
  return `/appproxy-bench/w/${index}/`;
}

/** The range end of a prefix watch: the prefix with its last byte incremented. */
export function prefixEnd(prefix: string): string {
  const bytes = Buffer.from(prefix, "utf8");
  bytes[bytes.length - 1]! += 1;
  return bytes.toString("utf8");
}

/** One put of `value` (a JSON text) under worker `index`'s prefix. */
export function etcdPut(base: string, index: number, key: string, value: string) {
  return etcdJson(base, "/v3/kv/put", {
    key: b64(workerPrefix(index) + key),
    value: b64(value),
  });
}

export interface EtcdWatch {
  /** Resolves once etcd confirmed the watch (`created`). */
  created: Promise<void>;
  close(): void;
}

/**
 * Watches worker `index`'s prefix over the gateway's streaming /v3/watch (one HTTP request per
 * watch, newline-delimited JSON answers); calls `onValue` with each put value as it arrives.
 */
export function watchPrefix(
  base: string,
  index: number,
  onValue: (value: string) => void,
  watchAgent: http.Agent,
): EtcdWatch {
  const url = new URL("/v3/watch", base);
  const prefix = workerPrefix(index);
  const body = JSON.stringify({
    create_request: { key: b64(prefix), range_end: b64(prefixEnd(prefix)) },
  });
  let closed = false;
  let req: http.ClientRequest | undefined;
  const created = new Promise<void>((resolve, reject) => {
    req = http.request(
      {
        agent: watchAgent,
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body) },
      },
      (res) => {
        if (res.statusCode !== 200) {
          reject(new Error(`watch ${index}: ${res.statusCode}`));
          res.resume();
          return;
        }
        let buffered = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => {
          buffered += chunk;
          for (let nl = buffered.indexOf("\n"); nl >= 0; nl = buffered.indexOf("\n")) {
            const line = buffered.slice(0, nl);
            buffered = buffered.slice(nl + 1);
            if (line.trim()) handle(line);
          }
        });
        res.on("end", () => {
          if (!closed) reject(new Error(`watch ${index} ended`));
        });
      },
    );
    const handle = (line: string) => {
      const message = JSON.parse(line) as {
        result?: { created?: boolean; events?: Array<{ kv?: { value?: string } }> };
        error?: unknown;
      };
      if (message.error) return reject(new Error(`watch ${index}: ${JSON.stringify(message)}`));
      if (message.result?.created) resolve();
      for (const event of message.result?.events ?? []) {
        if (event.kv?.value) onValue(Buffer.from(event.kv.value, "base64").toString("utf8"));
      }
    };
    req.on("error", (error) => {
      if (!closed) reject(error);
    });
    req.end(body);
  });
  return {
    created,
    close() {
      closed = true;
      req?.destroy();
    },
  };
}
