import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerWorker } from "../support/factories.js";
import { startHarness } from "../support/harness.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

/** Writes `request` on a fresh connection; the status line and headers of the answer. */
function sendRaw(request: string): Promise<{ status: number; headers: string }> {
  const { hostname, port } = new URL(h.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let text = "";
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer: ${JSON.stringify(text)}`));
    }, 10_000);
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: Buffer) => {
      text += chunk.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return;
      clearTimeout(timer);
      socket.destroy();
      resolve({ status: Number(text.split(" ")[1]), headers: text.slice(0, end).toLowerCase() });
    });
    socket.on("error", reject);
  });
}

describe("the stream path without a WebSocket upgrade", () => {
  it("answers a plain GET, with or without a token, 426 naming websocket", async () => {
    const w = await registerWorker(h.registration);
    const path = `/workers/${w.worker.id}/stream`;
    for (const api of [h.anonymous, h.anonymous.as(w.token)]) {
      const res = await api.get<{ status: number; title: string }>(path);
      expect(res.status).toBe(426);
      expect(res.headers.get("upgrade")).toBe("websocket");
      expect(res.headers.get("content-type")).toContain("application/problem+json");
      expect(res.body).toMatchObject({ status: 426, title: "Upgrade Required" });
    }
  });

  it("answers Connection: Upgrade without a WebSocket, and an upgrade to another protocol, 426", async () => {
    const w = await registerWorker(h.registration);
    const host = new URL(h.url).host;
    const path = `/workers/${w.worker.id}/stream`;
    const noProtocol = await sendRaw(
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${w.token}\r\n` +
        "Connection: Upgrade\r\n\r\n",
    );
    expect(noProtocol.status).toBe(426);
    expect(noProtocol.headers).toContain("upgrade: websocket");
    const h2c = await sendRaw(
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${w.token}\r\n` +
        "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n",
    );
    expect(h2c.status).toBe(426);
    expect(h2c.headers).toContain("upgrade: websocket");
  });
});

describe("a worker token on the HTTP paths", () => {
  it("is 403 while its worker exists and 404 once it is removed", async () => {
    const w = await registerWorker(h.registration);
    const asWorker = h.anonymous.as(w.token);
    expect((await asWorker.get("/routes")).status).toBe(403);
    expect((await asWorker.get(`/workers/${w.worker.id}`)).status).toBe(403);
    expect((await h.manager.delete(`/workers/${w.worker.id}`)).status).toBe(204);
    for (const path of ["/routes", `/workers/${w.worker.id}`, "/status"]) {
      const res = await asWorker.get<{ detail: string }>(path);
      expect(res.status, path).toBe(404);
      expect(res.body.detail).toContain(w.worker.id);
    }
    // Paths open to anyone stay open to it.
    expect((await asWorker.get("/healthz")).status).toBe(200);
  });
});
