/**
 * Bodies stream through the worker and back-pressure holds both ways (docs/worker.md): an
 * upstream sees an upload's first bytes before the client has sent the rest; a client that reads
 * nothing stalls a large answer at the upstream, and an upstream that reads nothing stalls a
 * large upload at the client, each after a few buffers' worth, never the whole body; a TCP
 * tunnel whose ends read nothing stalls both senders alike.
 */
import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, waitFor } from "../support/harness.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";
import { createRoute } from "./support/routes.js";

const MIB = 1024 * 1024;
/** What either side tries to send: far more than every buffer on the way holds. */
const BODY_BYTES = 256 * MIB;
/** Buffers on the way (sockets on both legs, the streams between): well below this. */
const BUFFERED_AT_MOST = 64 * MIB;
/** A writer that has waited this long for `drain` counts as stalled. */
const STALLED_MS = 1000;
const CHUNK = Buffer.alloc(MIB, 0x61);

/** Writes up to `total` bytes, waiting for `drain` when told to; tells how far it got. */
class Writer {
  written = 0;
  finished = false;
  #waitingSince: number | undefined;

  constructor(
    private readonly stream: NodeJS.WritableStream,
    private readonly total: number,
    private readonly end = true,
  ) {
    this.#next();
  }

  /** True once it waited for `drain` STALLED_MS; a finished writer never stalls. */
  get stalled(): boolean {
    return this.#waitingSince !== undefined && Date.now() - this.#waitingSince >= STALLED_MS;
  }

  #next(): void {
    this.#waitingSince = undefined;
    while (this.written < this.total) {
      this.written += CHUNK.length;
      if (!this.stream.write(CHUNK)) {
        this.#waitingSince = Date.now();
        this.stream.once("drain", () => this.#next());
        return;
      }
    }
    this.finished = true;
    if (this.end) this.stream.end();
  }
}

/**
 * The app: `GET /flood` answers BODY_BYTES; `POST /first` answers at its body's first chunk;
 * `POST /hold` never reads its body. On `tcpPort`, each connection is flooded with BODY_BYTES and
 * never read.
 */
interface StreamingApp {
  port: number;
  tcpPort: number;
  flood?: Writer;
  tcpFlood?: Writer;
  close(): Promise<void>;
}

async function startApp(): Promise<StreamingApp> {
  const app: StreamingApp = { port: 0, tcpPort: 0, close: async () => undefined };
  const server = http.createServer((req, res) => {
    if (req.url === "/flood") {
      res.writeHead(200, { "content-type": "application/octet-stream" });
      app.flood = new Writer(res, BODY_BYTES);
      return;
    }
    if (req.url === "/first") {
      req.once("data", (chunk: Buffer) => {
        res.writeHead(200).end(`first ${chunk.length}`);
        req.resume();
      });
      return;
    }
    // `/hold`: the upload is never read.
    req.pause();
  });
  const tcp = net.createServer((socket) => {
    socket.pause();
    socket.on("error", () => undefined);
    app.tcpFlood = new Writer(socket, BODY_BYTES);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
  app.port = (server.address() as AddressInfo).port;
  app.tcpPort = (tcp.address() as AddressInfo).port;
  const sockets = new Set<net.Socket>();
  tcp.on("connection", (socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  app.close = async () => {
    server.closeAllConnections();
    for (const socket of sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await new Promise<void>((resolve) => tcp.close(() => resolve()));
  };
  return app;
}

let h: Awaited<ReturnType<typeof startHarness>>;
let w: InProcessWorker;
let app: StreamingApp;
let url: string;

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  app = await startApp();
  w = await startInProcessWorker(h.url, { name: "w-stream" });
  url = (await createRoute(h.manager, w.workerId, w.portRange[0], app.port)).url;
}, 60_000);

afterAll(async () => {
  await w?.close();
  await app?.close();
  await h?.close();
});

function post(path: string): http.ClientRequest {
  return http.request(new URL(path, url), {
    method: "POST",
    agent: false,
    headers: { "content-type": "application/octet-stream", "transfer-encoding": "chunked" },
  });
}

describe("bodies through the worker", () => {
  it("hands an upload's first chunk to the upstream before the client sends the rest", async () => {
    const req = post("/first");
    const answer = new Promise<string>((resolve, reject) => {
      req.once("response", (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (chunk: string) => (text += chunk));
        res.once("end", () => resolve(text));
      });
      req.once("error", reject);
    });
    req.write(Buffer.alloc(1000, 0x62));
    // Nothing more is sent until the upstream answered: a worker buffering the body would wait.
    let deadline: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      deadline = setTimeout(
        () => reject(new Error("the upstream saw nothing of the upload within 15 s")),
        15_000,
      );
    });
    try {
      expect(await Promise.race([answer, late])).toMatch(/^first \d+$/);
    } finally {
      clearTimeout(deadline);
      req.end();
    }
  });

  it("stalls a large answer at the upstream while the client reads nothing", async () => {
    const req = http.get(new URL("/flood", url), { agent: false });
    const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
    });
    res.pause();
    try {
      const flood: Writer | undefined = await waitFor(
        () => (app.flood?.stalled || app.flood?.finished ? app.flood : undefined),
        30_000,
        "the upstream to stall or finish",
      );
      if (flood === undefined) throw new Error("no answer was started");
      expect(flood.finished, "the upstream wrote the whole body: nothing held it back").toBe(false);
      expect(flood.written).toBeLessThan(BUFFERED_AT_MOST);
    } finally {
      req.destroy();
    }
  });

  it("stalls a large upload at the client while the upstream reads nothing", async () => {
    const req = post("/hold");
    req.on("error", () => undefined);
    const upload = new Writer(req, BODY_BYTES, false);
    try {
      await waitFor(
        () => upload.stalled || upload.finished,
        30_000,
        "the client's upload to stall or finish",
      );
      expect(upload.finished, "the client sent the whole body: nothing held it back").toBe(false);
      expect(upload.written).toBeLessThan(BUFFERED_AT_MOST);
    } finally {
      req.destroy();
    }
  });

  it("stalls a TCP tunnel both ways while neither end reads", async () => {
    const route = await createRoute(h.manager, w.workerId, w.portRange[1], app.tcpPort, {
      protocol: "tcp",
    });
    const socket = net.connect({ host: w.host, port: route.port ?? 0 });
    socket.on("error", () => undefined);
    socket.pause();
    const upload = new Writer(socket, BODY_BYTES, false);
    try {
      const flood: Writer | undefined = await waitFor(
        () => (app.tcpFlood?.stalled || app.tcpFlood?.finished ? app.tcpFlood : undefined),
        30_000,
        "the upstream's flood to stall or finish",
      );
      if (flood === undefined) throw new Error("the upstream took no connection");
      await waitFor(() => upload.stalled || upload.finished, 30_000, "the client to stall");
      expect(flood.finished, "the upstream sent everything: nothing held it back").toBe(false);
      expect(upload.finished, "the client sent everything: nothing held it back").toBe(false);
      expect(flood.written).toBeLessThan(BUFFERED_AT_MOST);
      expect(upload.written).toBeLessThan(BUFFERED_AT_MOST);
    } finally {
      socket.destroy();
    }
  });
});
