import http from "node:http";
import { Readable } from "node:stream";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, TOKENS } from "../support/harness.js";
import { portWorker, registerWorker, routeBody } from "../support/factories.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;
let h: Harness;

beforeAll(async () => {
  h = await startHarness();
  await registerWorker(h.registration, portWorker({ port_range: [10300, 10399] }));
});
afterAll(() => h?.close());

interface Sent {
  status: number;
  contentType: string | undefined;
  body: string;
}

/**
 * POST /routes with the body as given: a Buffer is sent with its Content-Length, an array of
 * chunks without one (chunked transfer encoding), as a client streaming its body would.
 */
function send(body: Buffer | Buffer[], headers: Record<string, string> = {}): Promise<Sent> {
  const url = new URL("/routes", h.url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: "POST",
        headers: {
          authorization: `Bearer ${TOKENS.manager}`,
          "content-type": "application/json",
          ...(Buffer.isBuffer(body) ? { "content-length": String(body.length) } : {}),
          ...headers,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers["content-type"],
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    req.on("error", reject);
    if (Buffer.isBuffer(body)) req.end(body);
    else Readable.from(body).pipe(req);
  });
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const version = async () => (await h.database.knex("routing_state").first("version")).version;

describe("request bodies", () => {
  it("reads a body sent in chunks without a Content-Length", async () => {
    const whole = json(routeBody({ session_id: "chunked" }));
    const res = await send([whole.subarray(0, 10), whole.subarray(10, 40), whole.subarray(40)]);
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ session_id: "chunked" });
  });

  it("accepts an explicit UTF-8 charset and a byte order mark, and keeps non-ASCII text", async () => {
    const body = Buffer.concat([
      Buffer.from([0xef, 0xbb, 0xbf]),
      json(routeBody({ session_id: "bom", labels: { owner: "Zoë 東京" } })),
    ]);
    const res = await send(body, { "content-type": "application/json; charset=UTF-8" });
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ labels: { owner: "Zoë 東京" } });
  });

  it("refuses a body that is not valid UTF-8 with 400, and changes nothing", async () => {
    const before = await version();
    const text = JSON.stringify(routeBody({ session_id: "SESSION" }));
    const [head, tail] = text.split("SESSION") as [string, string];
    // 0xff never occurs in UTF-8; 0xe0 0xa4 starts a three-byte sequence that is cut short.
    for (const broken of [
      [0xff, 0xfe],
      [0xe0, 0xa4, 0x41],
    ]) {
      const body = Buffer.concat([Buffer.from(head), Buffer.from(broken), Buffer.from(tail)]);
      const res = await send(body);
      expect(res.status, res.body).toBe(400);
      expect(res.contentType).toMatch(/^application\/problem\+json/);
      expect(JSON.parse(res.body)).toMatchObject({
        status: 400,
        detail: expect.stringMatching(/UTF-8/),
      });
    }
    const gzipped = gzipSync(
      Buffer.concat([Buffer.from(head), Buffer.from([0xff]), Buffer.from(tail)]),
    );
    const inflated = await send(gzipped, { "content-encoding": "gzip" });
    expect(inflated.status, inflated.body).toBe(400);
    expect(JSON.parse(inflated.body)).toMatchObject({ detail: "The body is not valid UTF-8." });
    expect(await version()).toBe(before);
  });

  it("says a JSON value that is not an object or array is not a body, rather than not JSON", async () => {
    for (const text of ["null", '"x"', "42"]) {
      const res = await send(Buffer.from(text));
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ detail: expect.stringMatching(/JSON object/) });
    }
    const broken = await send(Buffer.from('{"a": '));
    expect(JSON.parse(broken.body)).toMatchObject({ detail: "The body is not valid JSON." });
  });

  it("inflates a gzip-compressed body", async () => {
    const res = await send(gzipSync(json(routeBody({ session_id: "gzipped" }))), {
      "content-encoding": "gzip",
    });
    expect(res.status).toBe(201);
    expect(JSON.parse(res.body)).toMatchObject({ session_id: "gzipped" });
  });

  it.each([
    ["a JSON string", json("a route"), 400],
    ["a JSON number", Buffer.from(" 42"), 400],
    ["only white space", Buffer.from(" \n\t "), 400],
    ["an unknown content encoding", json(routeBody()), 415, { "content-encoding": "compress" }],
    [
      "a UTF-16 charset it cannot decode as said",
      json(routeBody()),
      400,
      {
        "content-type": "application/json; charset=utf-16",
      },
    ],
  ] as Array<[string, Buffer, number, Record<string, string>?]>)(
    "answers %s with a problem and changes nothing",
    async (_name, body, status, headers) => {
      const before = await version();
      const res = await send(body, headers);
      expect(res.status).toBe(status);
      expect(res.contentType).toMatch(/^application\/problem\+json/);
      expect(await version()).toBe(before);
    },
  );

  it("refuses more than 1 MiB sent in chunks without a Content-Length with 413", async () => {
    const before = await version();
    const padding = Buffer.alloc(64 * 1024, 0x20);
    const chunks = [Buffer.from('{"session_id":"big","padding":"'), ...Array(20).fill(padding)];
    chunks.push(Buffer.from('"}'));
    const res = await send(chunks);
    expect(res.status).toBe(413);
    expect(res.contentType).toMatch(/^application\/problem\+json/);
    expect(await version()).toBe(before);
    // The connection and the server are fine afterwards.
    expect((await send(json(routeBody({ session_id: "after-big" })))).status).toBe(201);
  });
});
