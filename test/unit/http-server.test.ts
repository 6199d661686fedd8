import type { AddressInfo } from "node:net";
import express from "express";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createHttpServer } from "../../src/http/server.js";

const app = express();
app.post("/echo", express.json(), (req, res) => {
  res.status(201).json({ got: req.body as unknown, header: req.get("x-probe") ?? null });
});
const server = createHttpServer(app, {
  maxConnections: 1000,
  headersTimeoutMs: 20_000,
  requestTimeoutMs: 60_000,
  idleTimeoutMs: 65_000,
});
const born: boolean[] = [];
// Runs before Express sees the request: what the server created, before any re-parenting.
server.prependListener("request", (req, res) => {
  born.push(
    Object.getPrototypeOf(req) === app.request && Object.getPrototypeOf(res) === app.response,
  );
});
let url: string;

beforeAll(async () => {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

describe("the HTTP server", () => {
  it("creates requests and responses with the app's prototypes, and Express works on them", async () => {
    const res = await fetch(`${url}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-probe": "p1" },
      body: JSON.stringify({ a: 1 }),
    });
    expect(res.status).toBe(201);
    expect(await res.json()).toEqual({ got: { a: 1 }, header: "p1" });
    expect(born).toEqual([true]);
  });
});
