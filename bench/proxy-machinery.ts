/**
 * Which HTTP machinery should the proxy worker use for its upstream leg? Runs one 1 KiB GET at a
 * time on each of 16 keep-alive connections through a one-route proxy built three ways:
 *
 *   undici-pool   node:http server, undici 7 Pool per upstream, `pool.stream()` into the response
 *   http-agent    node:http server, http.request with http.Agent({keepAlive: true}), pipe both ways
 *   http-proxy-3  node:http server, http-proxy-3 1.23 `web()` with the same keep-alive agent
 *
 * The proxy runs alone in a child process (the upstream in another, the load generator here) and
 * reports its own CPU time from process.cpuUsage(), so CPU µs per request is the proxy's alone.
 *
 *   npx tsx bench/proxy-machinery.ts [seconds per run, default 5] [rounds, default 2]
 */
import { fork, type ChildProcess } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";

const KINDS = ["undici-pool", "http-agent", "http-proxy-3"] as const;
type Kind = (typeof KINDS)[number];
const IN_FLIGHT = 16;
const BODY = Buffer.alloc(1024, "x");

interface CpuReport {
  cpuMicros: number;
}

async function runUpstream(): Promise<void> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/plain", "content-length": BODY.length });
    res.end(BODY);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.send?.({ port: (server.address() as AddressInfo).port });
}

async function runProxy(kind: Kind, upstreamPort: number): Promise<void> {
  const target = `http://127.0.0.1:${upstreamPort}`;
  let handler: http.RequestListener;
  if (kind === "undici-pool") {
    const pool = new Pool(target, { connections: 64 });
    handler = (req, res) => {
      pool
        .stream(
          {
            path: req.url ?? "/",
            method: req.method as "GET",
            headers: req.headers as Record<string, string>,
            body: req.method === "GET" || req.method === "HEAD" ? null : req,
          },
          ({ statusCode, headers }) => {
            res.writeHead(statusCode, headers as http.OutgoingHttpHeaders);
            return res;
          },
        )
        .catch(() => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
    };
  } else {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
    if (kind === "http-agent") {
      handler = (req, res) => {
        const upstream = http.request(
          {
            host: "127.0.0.1",
            port: upstreamPort,
            method: req.method,
            path: req.url,
            headers: req.headers,
            agent,
          },
          (answer) => {
            res.writeHead(answer.statusCode ?? 502, answer.headers);
            answer.pipe(res);
          },
        );
        upstream.on("error", () => {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        });
        req.pipe(upstream);
      };
    } else {
      const { createProxyServer } = await import("http-proxy-3");
      const proxy = createProxyServer({ target, agent });
      proxy.on("error", (_error, _req, res) => {
        if (res instanceof http.ServerResponse) {
          if (!res.headersSent) res.writeHead(502);
          res.end();
        }
      });
      handler = (req, res) => proxy.web(req, res);
    }
  }
  const server = http.createServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  process.on("message", (message) => {
    if (message === "cpu") {
      const usage = process.cpuUsage();
      process.send?.({ cpuMicros: usage.user + usage.system } satisfies CpuReport);
    }
  });
  process.send?.({ port: (server.address() as AddressInfo).port });
}

function startChild(args: string[]): Promise<{ child: ChildProcess; port: number }> {
  const child = fork(fileURLToPath(import.meta.url), args, { execArgv: ["--import", "tsx"] });
  return new Promise((resolve, reject) => {
    child.once("message", (message) =>
      resolve({ child, port: (message as { port: number }).port }),
    );
    child.once("exit", (code) => reject(new Error(`child ${args.join(" ")} exited ${code}`)));
  });
}

function askCpu(child: ChildProcess): Promise<number> {
  return new Promise((resolve) => {
    child.once("message", (message) => resolve((message as CpuReport).cpuMicros));
    child.send("cpu");
  });
}

/** Closed loop: IN_FLIGHT requests outstanding until the deadline; returns completed requests. */
async function load(port: number, seconds: number): Promise<number> {
  const client = new Pool(`http://127.0.0.1:${port}`, { connections: IN_FLIGHT });
  const deadline = performance.now() + seconds * 1000;
  let done = 0;
  const loop = async (): Promise<void> => {
    while (performance.now() < deadline) {
      const answer = await client.request({ path: "/bench", method: "GET" });
      await answer.body.arrayBuffer();
      if (answer.statusCode !== 200) throw new Error(`status ${answer.statusCode}`);
      done += 1;
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, loop));
  await client.close();
  return done;
}

async function measure(kind: Kind, upstreamPort: number, seconds: number): Promise<void> {
  const { child, port } = await startChild(["proxy", kind, String(upstreamPort)]);
  try {
    await load(port, 1); // warm-up: JIT, pools filled
    const cpuBefore = await askCpu(child);
    const started = performance.now();
    const requests = await load(port, seconds);
    const elapsedS = (performance.now() - started) / 1000;
    const cpuMicros = (await askCpu(child)) - cpuBefore;
    console.log(
      `${kind.padEnd(13)} ${String(Math.round(requests / elapsedS)).padStart(7)} req/s ` +
        `${(cpuMicros / requests).toFixed(1).padStart(6)} µs CPU/request (proxy process)`,
    );
  } finally {
    child.kill();
  }
}

async function main(): Promise<void> {
  const [role, kind, upstreamPort] = process.argv.slice(2);
  if (role === "upstream") return runUpstream();
  if (role === "proxy") return runProxy(kind as Kind, Number(upstreamPort));
  const seconds = Number(role ?? 5);
  const rounds = Number(kind ?? 2);
  const upstream = await startChild(["upstream"]);
  console.log(`1 KiB GET, ${IN_FLIGHT} in flight, ${seconds} s per run, ${rounds} rounds`);
  try {
    for (let round = 0; round < rounds; round += 1) {
      for (const each of KINDS) await measure(each, upstream.port, seconds);
    }
  } finally {
    upstream.child.kill();
  }
}

await main();
