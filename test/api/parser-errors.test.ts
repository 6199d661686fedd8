import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness } from "../support/harness.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
});

afterAll(async () => {
  await h?.close();
});

interface RawAnswer {
  status: number;
  headers: Map<string, string>;
  body: string;
}

/** Writes `request` as it is on a fresh connection and reads until the server closes it. */
function sendRaw(request: string, timeoutMs = 5000): Promise<RawAnswer> {
  const { hostname, port } = new URL(h.url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no complete answer within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on("connect", () => socket.write(request));
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      const text = Buffer.concat(chunks).toString("utf8");
      const end = text.indexOf("\r\n\r\n");
      if (end < 0) return reject(new Error(`not an HTTP answer: ${JSON.stringify(text)}`));
      const [statusLine, ...lines] = text.slice(0, end).split("\r\n");
      const headers = new Map<string, string>();
      for (const line of lines) {
        const colon = line.indexOf(":");
        headers.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
      }
      const status = Number(/^HTTP\/1\.1 (\d{3}) /.exec(statusLine ?? "")?.[1] ?? 0);
      resolve({ status, headers, body: text.slice(end + 4) });
    });
  });
}

function expectProblem(answer: RawAnswer, status: number): void {
  expect(answer.status).toBe(status);
  expect(answer.headers.get("content-type")).toBe("application/problem+json");
  expect(answer.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
  expect(Number(answer.headers.get("content-length"))).toBe(Buffer.byteLength(answer.body));
  const problem = JSON.parse(answer.body) as Record<string, unknown>;
  expect(problem).toMatchObject({ status, title: expect.any(String), detail: expect.any(String) });
  expect(problem.type).toMatch(/^urn:appproxy:problem:/);
  expect(JSON.stringify(problem)).not.toMatch(/ at .*\.(ts|js):\d+/);
}

describe("a request Node's HTTP parser refuses", () => {
  const host = () => new URL(h.url).host;

  it("with a method HTTP does not know is a problem+json 400 with a request id", async () => {
    const answer = await sendRaw(`FOO /routes HTTP/1.1\r\nHost: ${host()}\r\n\r\n`);
    expectProblem(answer, 400);
    expect(JSON.parse(answer.body)).toMatchObject({ type: "urn:appproxy:problem:bad_request" });
  });

  it.each([
    [
      "a header line without a colon",
      (hs: string) => `GET /healthz HTTP/1.1\r\nHost: ${hs}\r\nbroken\r\n\r\n`,
    ],
    [
      "an HTTP version that does not exist",
      (hs: string) => `GET /healthz HTTP/7.1\r\nHost: ${hs}\r\n\r\n`,
    ],
    [
      "a space inside a header name",
      (hs: string) => `GET /healthz HTTP/1.1\r\nHost: ${hs}\r\nX Bad: 1\r\n\r\n`,
    ],
    [
      "a body length that is not a number",
      (hs: string) => `POST /routes HTTP/1.1\r\nHost: ${hs}\r\nContent-Length: ten\r\n\r\n`,
    ],
  ])("with %s is a problem+json 400", async (_name, request) => {
    expectProblem(await sendRaw(request(host())), 400);
  });

  it("with headers larger than the server takes is a problem+json 431", async () => {
    const big = "x".repeat(20 * 1024);
    const answer = await sendRaw(
      `GET /healthz HTTP/1.1\r\nHost: ${host()}\r\nX-Big: ${big}\r\n\r\n`,
    );
    expectProblem(answer, 431);
  });

  it("leaves the server answering the next request", async () => {
    await sendRaw(`FOO /routes HTTP/1.1\r\nHost: ${host()}\r\n\r\n`);
    const res = await h.anonymous.get("/healthz");
    expect(res.status).toBe(200);
  });
});
