import { calculateJwkThumbprint, decodeJwt, decodeProtectedHeader, type JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  AccessTokenVerifier,
  WorkerClient,
  type ConnectedEvent,
  type RegisteredEvent,
} from "../../src/client/index.js";
import {
  TOKENS,
  startHarness,
  startInstance,
  waitFor,
  type TestInstance,
} from "../support/harness.js";
import { portWorker, registerWorker, routeBody, type RouteAnswer } from "../support/factories.js";
import { RawStream } from "../sync/stream-client.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

interface Issued {
  token: string;
  expires_at: string;
  setup_url: string;
}

interface Problem {
  status: number;
  errors?: Array<{ path: string; message: string }>;
}

/** Another Ed25519 seed: the key an operator rotates to. */
const NEXT_KEY = "Jq3x0Bk9l7m2PmV6yH5aT1cR8uW4eZ0nD3sF6gJ9kLw";

let h: Harness;
let http: RouteAnswer;
let tcp: RouteAnswer;

beforeAll(async () => {
  h = await startHarness();
  await registerWorker(h.registration, portWorker());
  const created = await h.manager.post<RouteAnswer>("/routes", routeBody());
  const createdTcp = await h.manager.post<RouteAnswer>(
    "/routes",
    routeBody({ app: "ssh", protocol: "tcp", upstreams: [{ host: "10.0.0.5", port: 22 }] }),
  );
  expect(created.status).toBe(201);
  expect(createdTcp.status).toBe(201);
  http = created.body;
  tcp = createdTcp.body;
});
afterAll(() => h?.close());

const issue = (api = h.manager, id = http.id, body: unknown = {}, query = "") =>
  api.post<Issued & Problem>(`/routes/${id}/tokens${query}`, body);

async function jwksOf(instance: { anonymous: TestInstance["anonymous"] }): Promise<JSONWebKeySet> {
  const res = await instance.anonymous.get<JSONWebKeySet>("/.well-known/jwks.json");
  expect(res.status).toBe(200);
  return res.body;
}

describe("POST /routes/{id}/tokens", () => {
  it("issues an EdDSA token for the route, its expiry and the worker's setup URL", async () => {
    const res = await issue(h.manager, http.id, { user_id: "u1", ttl_s: 600 });
    expect(res.status).toBe(201);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(Object.keys(res.body).sort()).toEqual(["expires_at", "setup_url", "token"]);
    const { token, expires_at, setup_url } = res.body;

    const header = decodeProtectedHeader(token);
    const jwks = await jwksOf(h);
    expect(header.alg).toBe("EdDSA");
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    const claims = decodeJwt(token);
    expect(claims.route).toBe(http.id);
    expect(claims.sub).toBe("u1");
    expect(claims.exp! - claims.iat!).toBe(600);
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/);
    expect(new Date(expires_at).getTime()).toBe(claims.exp! * 1000);
    expect(setup_url).toBe(`${http.url}_appproxy/setup?token=${token}`);

    const check = await new AccessTokenVerifier(jwks).verify(token, http.id);
    expect(check).toEqual({
      ok: true,
      permit: { routeId: http.id, userId: "u1", exp: claims.exp, tokenId: claims.jti },
    });
  });

  it("lasts 8 hours by default, has no sub without a user, and a new jti each time", async () => {
    const [a, b] = await Promise.all([issue(), issue(h.manager, http.id, { user_id: null })]);
    expect([a.status, b.status]).toEqual([201, 201]);
    const claims = [decodeJwt(a.body.token), decodeJwt(b.body.token)];
    for (const c of claims) {
      expect(c.exp! - c.iat!).toBe(28_800);
      expect(c).not.toHaveProperty("sub");
    }
    expect(claims[0]!.jti).not.toBe(claims[1]!.jti);
  });

  it("accepts the bounds of ttl_s", async () => {
    for (const ttl_s of [60, 2_592_000]) {
      const res = await issue(h.manager, http.id, { ttl_s });
      expect(res.status).toBe(201);
      const c = decodeJwt(res.body.token);
      expect(c.exp! - c.iat!).toBe(ttl_s);
    }
  });

  it("refuses bad fields with a problem naming each of them", async () => {
    const cases: Array<[unknown, string[]]> = [
      [{ ttl_s: 59 }, ["ttl_s"]],
      [{ ttl_s: 2_592_001 }, ["ttl_s"]],
      [{ ttl_s: "600" }, ["ttl_s"]],
      [{ ttl_s: 600.5 }, ["ttl_s"]],
      [{ user_id: "" }, ["user_id"]],
      [{ user_id: 7 }, ["user_id"]],
      [{ user_id: "x".repeat(256) }, ["user_id"]],
      [{ route: http.id }, ["route"]],
      [{ ttl_s: 1, user_id: 1, sub: "u" }, ["ttl_s", "user_id", "sub"]],
    ];
    for (const [body, paths] of cases) {
      const res = await issue(h.manager, http.id, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(res.body.errors?.map((e) => e.path).sort()).toEqual([...paths].sort());
    }
    const query = await issue(h.manager, http.id, {}, "?ttl_s=600");
    expect(query.status).toBe(400);
    expect(query.body.errors?.map((e) => e.path)).toEqual(["query.ttl_s"]);
    const notJson = await h.manager.post(`/routes/${http.id}/tokens`, "ttl_s=600", {
      "content-type": "application/x-www-form-urlencoded",
    });
    expect(notJson.status).toBe(415);
  });

  it("answers 404 for a route that does not exist", async () => {
    for (const id of ["3f0c9a56-6a43-4d0e-9a51-2a5bb7f0c001", "not-a-uuid"]) {
      const res = await issue(h.manager, id);
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
  });

  it("answers 422 for a tcp route, which takes no tokens", async () => {
    const res = await issue(h.manager, tcp.id);
    expect(res.status).toBe(422);
    expect(res.body).not.toHaveProperty("token");
  });

  it("is for the manager only", async () => {
    expect((await issue(h.anonymous)).status).toBe(401);
    expect((await issue(h.admin)).status).toBe(403);
    expect((await issue(h.registration)).status).toBe(403);
  });
});

describe("the public keys", () => {
  it("are served to anyone as a JWK Set of Ed25519 keys, without their private half", async () => {
    const res = await h.anonymous.get<JSONWebKeySet>("/.well-known/jwks.json");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/jwk-set\+json/);
    expect(res.body.keys).toHaveLength(1);
    const [key] = res.body.keys;
    expect(Object.keys(key!).sort()).toEqual(["alg", "crv", "kid", "kty", "use", "x"]);
    expect(key).toMatchObject({ kty: "OKP", crv: "Ed25519", alg: "EdDSA", use: "sig" });
    expect(key!.kid).toBe(await calculateJwkThumbprint({ kty: "OKP", crv: "Ed25519", x: key!.x }));
    expect(JSON.stringify(res.body)).not.toContain(TOKENS.accessKey);
  });

  it("come with the registration answer and in every hello", async () => {
    const jwks = await jwksOf(h);
    const registered = await h.registration.post<{
      access_keys: unknown;
      worker: { id: string };
      token: string;
    }>("/workers/register", portWorker({ port_range: [11000, 11009] }));
    expect(registered.status).toBe(201);
    expect(registered.body.access_keys).toEqual(jwks);
    const stream = await RawStream.open(h.url, registered.body.worker.id, registered.body.token);
    try {
      const hello = await stream.next();
      expect(hello.type).toBe("hello");
      expect(hello.access_keys).toEqual(jwks);
    } finally {
      stream.socket.close();
      await stream.closed;
    }
  });

  it("reach the client library, whose verifier admits the route's tokens", async () => {
    const jwks = await jwksOf(h);
    const client = new WorkerClient({
      coordinatorUrl: h.url,
      registrationToken: TOKENS.registration,
      registration: portWorker({ port_range: [11010, 11019] }) as never,
    });
    const registered: RegisteredEvent[] = [];
    const connected: ConnectedEvent[] = [];
    const verifier = new AccessTokenVerifier();
    client.on("registered", (e) => registered.push(e));
    client.on("connected", (e) => connected.push(e));
    client.on("accessKeys", (keys) => verifier.setKeys(keys));
    try {
      await client.start();
      await waitFor(() => connected.length > 0, 10_000, "hello");
      expect(registered[0]!.accessKeys).toEqual(jwks);
      expect(connected[0]!.accessKeys).toEqual(jwks);
      expect(client.accessKeys).toEqual(jwks);
      const { token } = (await issue()).body;
      expect((await verifier.verify(token, http.id)).ok).toBe(true);
      expect(await verifier.verify(token, tcp.id)).toEqual({ ok: false, reason: "other_route" });
    } finally {
      await client.stop();
    }
  });
});

describe("rotation", () => {
  it("signs with the first key, publishes all, and older tokens verify while published", async () => {
    const before = await issue(h.manager, http.id, { user_id: "u2" });
    const oldKid = decodeProtectedHeader(before.body.token).kid;
    // Another instance on the same database, the next key first: as after a rolling restart.
    const rotated = await startInstance(h.database, {
      ACCESS_TOKEN_KEYS: `${NEXT_KEY},${TOKENS.accessKey}`,
    });
    try {
      const jwks = await jwksOf(rotated);
      expect(jwks.keys).toHaveLength(2);
      expect(jwks.keys[1]!.kid).toBe(oldKid);
      const after = await issue(rotated.manager, http.id);
      expect(after.status).toBe(201);
      const newKid = decodeProtectedHeader(after.body.token).kid;
      expect(newKid).toBe(jwks.keys[0]!.kid);
      expect(newKid).not.toBe(oldKid);

      const verifier = new AccessTokenVerifier(jwks);
      expect((await verifier.verify(before.body.token, http.id)).ok).toBe(true);
      expect((await verifier.verify(after.body.token, http.id)).ok).toBe(true);

      // Once the old key is no longer published, its tokens are refused.
      verifier.setKeys({ keys: [jwks.keys[0]!] });
      expect(await verifier.verify(before.body.token, http.id)).toEqual({
        ok: false,
        reason: "unknown_key",
      });
      expect((await verifier.verify(after.body.token, http.id)).ok).toBe(true);
    } finally {
      await rotated.stop();
    }
  });
});
