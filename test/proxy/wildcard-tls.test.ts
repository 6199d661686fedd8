import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import path from "node:path";
import type { TLSSocket } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RouteAnswer } from "../support/factories.js";
import { startHarness } from "../support/harness.js";
import { freePortRange, removeDir, startUpstreamApp, type UpstreamApp } from "./support.js";
import { startInProcessWorker, type InProcessWorker } from "./support/in-process-worker.js";
import { createAppliedRoute } from "./support/routes.js";

const HOST = "127.0.0.5";
const DOMAIN = "apps.test";
const fixture = (name: string): string => path.join(import.meta.dirname, "fixtures", name);

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  fingerprint: string;
}

let h: Awaited<ReturnType<typeof startHarness>>;
let app: UpstreamApp;
let w: InProcessWorker;
let dir: string;
let trafficPort: number;

/** An HTTPS request to the worker for `host`, trusting the test certificates. */
function request(
  host: string,
  target: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const outgoing = https.get(
      {
        host: HOST,
        port: trafficPort,
        path: target,
        servername: host,
        headers: { host: `${host}:${trafficPort}`, ...headers },
        ca: [readFileSync(fixture("wildcard-1.crt")), readFileSync(fixture("wildcard-2.crt"))],
        agent: false,
      },
      (answer) => {
        const chunks: Buffer[] = [];
        answer.on("data", (chunk: Buffer) => chunks.push(chunk));
        answer.on("end", () =>
          resolve({
            status: answer.statusCode ?? 0,
            headers: answer.headers,
            body: Buffer.concat(chunks).toString(),
            fingerprint: (answer.socket as TLSSocket).getPeerCertificate().fingerprint256,
          }),
        );
      },
    );
    outgoing.once("error", reject);
  });
}

beforeAll(async () => {
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  app = await startUpstreamApp();
  dir = mkdtempSync(path.join(tmpdir(), "appproxy-tls-"));
  copyFileSync(fixture("wildcard-1.crt"), path.join(dir, "tls.crt"));
  copyFileSync(fixture("wildcard-1.key"), path.join(dir, "tls.key"));
  [trafficPort] = await freePortRange([HOST], 1);
  w = await startInProcessWorker(h.url, {
    name: "w-wild",
    host: HOST,
    ports: 0,
    env: {
      WILDCARD_DOMAIN: DOMAIN,
      WILDCARD_TRAFFIC_PORT: String(trafficPort),
      TLS_CERT_FILE: path.join(dir, "tls.crt"),
      TLS_KEY_FILE: path.join(dir, "tls.key"),
    },
  });
}, 60_000);

afterAll(async () => {
  await w?.close();
  await app?.close();
  await h?.close();
  removeDir(dir);
});

/** A route of the wildcard domain: it has a subdomain. */
type WildcardRoute = RouteAnswer & { subdomain: string };

async function createRoute(body: Record<string, unknown> = {}): Promise<WildcardRoute> {
  return (await createAppliedRoute(h.manager, {
    open_to_public: true,
    upstreams: [{ host: "127.0.0.1", port: app.httpPort, weight: 1 }],
    ...body,
  })) as WildcardRoute;
}

describe("a worker in wildcard mode with TLS", () => {
  it("routes by Host, case-insensitive, over HTTPS", async () => {
    const route = await createRoute();
    expect(route.url).toBe(`https://${route.subdomain}.${DOMAIN}:${trafficPort}/`);
    const answer = await request(`${route.subdomain.toUpperCase()}.${DOMAIN}`, "/tree");
    expect(answer.status).toBe(200);
    const seen = JSON.parse(answer.body) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe("/tree");
    expect(seen.headers["x-forwarded-proto"]).toBe("https");
    const unknown = await request(`nothing-here.${DOMAIN}`, "/");
    expect(unknown.status).toBe(404);
  });

  it("sets a Secure permit cookie over TLS", async () => {
    const route = await createRoute({ open_to_public: false });
    const issued = await h.manager.post<{ token: string }>(`/routes/${route.id}/tokens`, {});
    const setup = await request(
      `${route.subdomain}.${DOMAIN}`,
      `/_appproxy/setup?token=${issued.body.token}`,
    );
    expect(setup.status).toBe(302);
    expect(String(setup.headers["set-cookie"])).toContain("Secure");
  });

  it("carries WSS, and reloads its certificate without dropping the connection", async () => {
    const route = await createRoute();
    const host = `${route.subdomain}.${DOMAIN}`;
    const before = await request(host, "/");
    // ws hands TLS options such as servername on to tls.connect; its types omit them.
    const tlsOptions: WebSocket.ClientOptions & { servername: string } = {
      headers: { host: `${host}:${trafficPort}` },
      servername: host,
      ca: [readFileSync(fixture("wildcard-1.crt"))],
    };
    const socket = new WebSocket(`wss://${HOST}:${trafficPort}/`, tlsOptions);
    await new Promise((resolve, reject) => {
      socket.once("open", resolve);
      socket.once("error", reject);
    });
    copyFileSync(fixture("wildcard-2.crt"), path.join(dir, "tls.crt"));
    copyFileSync(fixture("wildcard-2.key"), path.join(dir, "tls.key"));
    w.worker.reloadTls();
    const after = await request(host, "/");
    expect(after.status).toBe(200);
    expect(after.fingerprint).not.toBe(before.fingerprint);
    const echoed = new Promise<string>((resolve) =>
      socket.once("message", (data) => resolve(String(data))),
    );
    socket.send("still here");
    expect(await echoed).toBe("still here");
    socket.close();
  });
});
