import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerWorker, routeBody } from "../support/factories.js";
import { startHarness, waitFor } from "../support/harness.js";
import { RawStream } from "../sync/stream-client.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

/** A raw TCP connection to the coordinator, recording whether and what it was answered. */
function connect(
  url: string,
): Promise<{ socket: net.Socket; closed: () => boolean; data: () => string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    let closed = false;
    let data = "";
    const socket = net.connect(Number(port), hostname, () =>
      resolve({ socket, closed: () => closed, data: () => data }),
    );
    socket.on("data", (chunk: Buffer) => (data += chunk.toString("latin1")));
    socket.on("close", () => (closed = true));
    socket.on("error", () => undefined);
    socket.once("error", reject);
  });
}

describe("connections that never send a byte", () => {
  let h: Harness;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    h = await startHarness({
      HTTP_HEADERS_TIMEOUT_S: "1",
      HTTP_REQUEST_TIMEOUT_S: "1",
      HTTP_IDLE_TIMEOUT_S: "1",
      HEARTBEAT_INTERVAL_S: "60",
    });
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await h?.close();
  });

  it("are closed after the headers time-out, half-sent headers too, while a stream stays open", async () => {
    const worker = await registerWorker(h.registration);
    const stream = await RawStream.open(h.url, worker.worker.id, worker.token);
    await stream.expect("hello");
    await stream.expect("snapshot");

    const silent = await connect(h.url);
    const halfway = await connect(h.url);
    sockets.push(silent.socket, halfway.socket);
    halfway.socket.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");

    await waitFor(
      () => silent.closed() && halfway.closed(),
      15_000,
      "the silent connections closed",
    );
    expect(silent.data()).not.toContain("200 OK");
    expect(halfway.data()).not.toContain("200 OK");

    // Past every HTTP time-out, the stream (an upgraded connection) still carries changes.
    const created = await h.manager.post<{ id: string }>(
      "/routes",
      routeBody({ worker_id: worker.worker.id }),
    );
    expect(created.status).toBe(201);
    const diff = await stream.expect("diff");
    expect(diff.upserts).toEqual([expect.objectContaining({ id: created.body.id })]);
    await stream.close();
  });
});

describe("MAX_CONNECTIONS", () => {
  let h: Harness;
  const sockets: net.Socket[] = [];

  beforeAll(async () => {
    h = await startHarness({ MAX_CONNECTIONS: "3" });
  });
  afterAll(async () => {
    for (const s of sockets) s.destroy();
    await h?.close();
  });

  it("refuses connections over the cap and takes new ones once some close", async () => {
    // The test's own HTTP client may hold kept-alive connections: count from what gets in.
    const held: Array<Awaited<ReturnType<typeof connect>>> = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(h.url);
      sockets.push(c.socket);
      held.push(c);
    }
    await waitFor(
      () => held.filter((c) => c.closed()).length >= 3,
      10_000,
      "the connections over the cap to be closed",
    );
    const open = held.filter((c) => !c.closed());
    expect(open.length).toBeLessThanOrEqual(3);
    // An open one is served; after they all close, a new connection is served again.
    for (const c of held) c.socket.destroy();
    await waitFor(
      async () => {
        try {
          return (await fetch(`${h.url}/healthz`)).status === 200;
        } catch {
          return false;
        }
      },
      10_000,
      "a connection under the cap to be served",
    );
  });
});
