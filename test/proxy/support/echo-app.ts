/**
 * The app behind the proxy in the worker's fault and browser tests: `GET /` is an HTML page
 * whose script opens a WebSocket to its own origin and shows the echo of one message;
 * `GET /bytes/<n>` answers n bytes, slowly if asked (`?chunks=k&gap_ms=t`, so that a client can
 * hang up mid-response); any other GET answers a short text naming the path; every WebSocket
 * message is echoed. It counts the requests it answered.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { WebSocketServer } from "ws";

/** The page: its script writes the echo into #echo (or the failure) for the browser to read. */
export const ECHO_PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>echo app</title></head>
<body><h1 id="title">echo app</h1><p id="echo">waiting</p>
<script>
  const out = document.getElementById("echo");
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const socket = new WebSocket(scheme + location.host + "/socket");
  socket.onopen = () => socket.send("round trip " + location.pathname);
  socket.onmessage = (event) => { out.textContent = "echo: " + event.data; socket.close(); };
  socket.onerror = () => { out.textContent = "websocket failed"; };
</script></body></html>`;

export interface EchoApp {
  port: number;
  /** Requests answered (a response finished), by path. */
  readonly answered: Map<string, number>;
  /** Headers of the last request, for checks of what reached the upstream. */
  lastHeaders: http.IncomingHttpHeaders | undefined;
  close(): Promise<void>;
}

/**
 * Starts the app on a free port of `host`. `keepAliveTimeoutMs` is how long it keeps an idle
 * connection (the proxy's pooled upstream connections close after it).
 */
export async function startEchoApp(
  options: { host?: string; keepAliveTimeoutMs?: number } = {},
): Promise<EchoApp> {
  const answered = new Map<string, number>();
  const app: EchoApp = { port: 0, answered, lastHeaders: undefined, close: async () => undefined };
  const server = http.createServer((req, res) => {
    req.resume();
    app.lastHeaders = req.headers;
    const url = new URL(req.url ?? "/", "http://app");
    res.on("finish", () => answered.set(url.pathname, (answered.get(url.pathname) ?? 0) + 1));
    if (url.pathname === "/") {
      res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      res.end(ECHO_PAGE);
      return;
    }
    const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
    if (bytes) {
      sendBytes(res, Number(bytes[1]), url.searchParams);
      return;
    }
    res.writeHead(200, { "content-type": "text/plain" });
    res.end(`app ${url.pathname}`);
  });
  server.keepAliveTimeout = options.keepAliveTimeoutMs ?? 60_000;
  const sockets = new WebSocketServer({ server, perMessageDeflate: false });
  sockets.on("connection", (socket) => {
    socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
    socket.on("error", () => socket.terminate());
  });
  await new Promise<void>((resolve) => server.listen(0, options.host ?? "127.0.0.1", resolve));
  app.port = (server.address() as AddressInfo).port;
  app.close = async () => {
    for (const client of sockets.clients) client.terminate();
    sockets.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return app;
}

/** n bytes in `chunks` writes `gap_ms` apart (one write when not asked otherwise). */
function sendBytes(res: http.ServerResponse, total: number, query: URLSearchParams): void {
  const chunks = Math.max(1, Number(query.get("chunks") ?? 1));
  const gapMs = Number(query.get("gap_ms") ?? 0);
  res.writeHead(200, { "content-type": "application/octet-stream", "content-length": total });
  const size = Math.ceil(total / chunks);
  let sent = 0;
  const next = () => {
    if (res.destroyed) return;
    const n = Math.min(size, total - sent);
    sent += n;
    if (sent >= total) {
      res.end(Buffer.alloc(n, "b"));
      return;
    }
    res.write(Buffer.alloc(n, "b"));
    setTimeout(next, gapMs);
  };
  next();
}
