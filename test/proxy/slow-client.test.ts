/**
 * A client that sends its request's headers too slowly is answered 408 and closed after
 * HTTP_HEADERS_TIMEOUT_S, in both frontend modes: one byte now and then must not hold a
 * connection (and a descriptor) for ever. In port mode the HTTP server is handed connections by
 * the ports' listeners rather than listening itself, which Node's watch of slow connections does
 * not cover unless told (src/proxy/frontends.ts).
 */
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, waitFor } from "../support/harness.js";
import { freePortRange } from "./support.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";

let h: Awaited<ReturnType<typeof startHarness>>;
const workers: InProcessWorker[] = [];

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
}, 60_000);

afterAll(async () => {
  for (const worker of workers) await worker.close();
  await h?.close();
});

/** Sends the start of a request head and never the rest; what came back and whether it closed. */
async function slowRequest(host: string, port: number): Promise<string> {
  const socket = net.connect({ host, port });
  let received = "";
  let closed = false;
  socket.setEncoding("utf8");
  socket.on("data", (chunk: string) => (received += chunk));
  socket.on("error", () => undefined);
  socket.once("close", () => (closed = true));
  socket.write("GET / HTTP/1.1\r\nHost: slow.apps.test\r\nX-Slow: ");
  try {
    await waitFor(() => closed, 20_000, "the worker to close the slow connection");
  } finally {
    socket.destroy();
  }
  return received;
}

describe("a client slow to send its headers", () => {
  it("is answered 408 and closed in port mode", async () => {
    const worker = await startInProcessWorker(h.url, {
      name: "w-slow-port",
      env: { HTTP_HEADERS_TIMEOUT_S: "1" },
    });
    workers.push(worker);
    expect(await slowRequest(worker.host, worker.portRange[0])).toMatch(/^HTTP\/1\.1 408 /);
  }, 30_000);

  it("is answered 408 and closed in wildcard mode", async () => {
    const host = "127.0.0.32";
    const [trafficPort] = (await freePortRange([host], 1)) as [number, number];
    const worker = await startInProcessWorker(h.url, {
      name: "w-slow-wild",
      host,
      ports: 0,
      env: {
        WILDCARD_DOMAIN: "apps.test",
        WILDCARD_TRAFFIC_PORT: String(trafficPort),
        HTTP_HEADERS_TIMEOUT_S: "1",
      },
    });
    workers.push(worker);
    expect(await slowRequest(host, trafficPort)).toMatch(/^HTTP\/1\.1 408 /);
  }, 30_000);
});
