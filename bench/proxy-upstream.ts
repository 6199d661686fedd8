/**
 * The app behind every proxy in `bench:proxy`, in a process of its own: `GET` answers 1 KiB,
 * a WebSocket upgrade echoes every message back. It prints `{"port": N}` once it listens and
 * runs until its parent goes away.
 */
import http from "node:http";
import { WebSocketServer } from "ws";

/** The body of every GET: 1 KiB, the size the throughput target names. */
const BODY = Buffer.alloc(1024, "x");

const server = http.createServer((req, res) => {
  // A request body (none in the bench) is read and dropped so that keep-alive goes on.
  req.resume();
  res.writeHead(200, { "content-type": "text/plain", "content-length": BODY.length });
  res.end(BODY);
});
server.keepAliveTimeout = 60_000;

const echo = new WebSocketServer({ server, perMessageDeflate: false });
echo.on("connection", (socket) => {
  socket.on("message", (data, isBinary) => socket.send(data, { binary: isBinary }));
  socket.on("error", () => socket.terminate());
});

server.listen(0, process.env.UPSTREAM_HOST ?? "127.0.0.1", () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`${JSON.stringify({ port })}\n`);
});

// The bench went away (its stdin pipe closed): nothing of it may stay behind.
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
