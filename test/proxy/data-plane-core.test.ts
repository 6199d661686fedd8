import { describe, expect, it } from "vitest";
import type { Upstream } from "../../src/client/index.js";
import type { AccessPermit } from "../../src/client/index.js";
import { credentialsOf, decideAccess, type RouteTokenVerifier } from "../../src/proxy/access.js";
import { upstreamRequestHeaders, withoutCookie } from "../../src/proxy/forwarding.js";
import { ServingIndex, subdomainOfHost, type ServedRoute } from "../../src/proxy/route-index.js";
import type { ServingScope } from "../../src/proxy/route-validation.js";
import { sameRouteRedirect } from "../../src/proxy/setup-path.js";
import { UpstreamBalancer } from "../../src/proxy/upstream-balancer.js";
import { makeRoute } from "../client/route-factory.js";

const portScope: ServingScope = {
  frontendMode: "port",
  portRange: [10200, 10299],
  protocols: ["http", "tcp"],
  modes: ["interactive", "inference"],
};

function picks(balancer: UpstreamBalancer, count: number, now = 0): string[] {
  return Array.from({ length: count }, () => balancer.pick(now)?.host ?? "-");
}

describe("smooth weighted round robin", () => {
  const a: Upstream = { host: "a", port: 1, weight: 3 };
  const b: Upstream = { host: "b", port: 1, weight: 1 };

  it("interleaves by weight", () => {
    expect(picks(new UpstreamBalancer([a, b]), 8).join("")).toBe("aaba".repeat(2));
  });

  it("gives weight 0 no traffic", () => {
    const idle: Upstream = { host: "z", port: 1, weight: 0 };
    expect(new Set(picks(new UpstreamBalancer([a, idle]), 10))).toEqual(new Set(["a"]));
    expect(new UpstreamBalancer([idle]).pick(0)).toBeUndefined();
  });

  it("passes over a refusing upstream for a while, then tries it again", () => {
    const balancer = new UpstreamBalancer([a, b]);
    balancer.markRefused(a, 1000);
    expect(new Set(picks(balancer, 5, 1500))).toEqual(new Set(["b"]));
    expect(picks(balancer, 8, 5000)).toContain("a");
  });

  it("tries the upstream whose pause ends first when all are refusing", () => {
    const balancer = new UpstreamBalancer([a, b]);
    balancer.markRefused(a, 1000);
    balancer.markRefused(a, 1000);
    balancer.markRefused(b, 1000);
    expect(balancer.pick(1500)?.host).toBe("b");
  });

  it("takes unhealthy upstreams out until they pass", () => {
    const balancer = new UpstreamBalancer([a, b]);
    balancer.setHealthy(a, false);
    expect(new Set(picks(balancer, 5))).toEqual(new Set(["b"]));
    balancer.setHealthy(b, false);
    expect(balancer.pick(0)).toBeUndefined();
  });
});

describe("the lookup index", () => {
  it("serves routes by port, keeps untouched ones, and names departures", () => {
    const kept = makeRoute({ port: 10201 });
    const moving = makeRoute({ port: 10202 });
    const deleted = makeRoute({ port: 10203 });
    const index = new ServingIndex(portScope);
    index.apply({ from: 0, to: 1, upserts: [kept, moving, deleted], deletes: [] });
    const keptServed = index.byPort.get(10201);
    const update = index.apply({
      from: 1,
      to: 2,
      upserts: [{ ...moving, port: 10204 }],
      deletes: [deleted.id],
    });
    expect(index.version).toBe(2);
    expect(index.byPort.get(10201)).toBe(keptServed);
    expect(index.byPort.get(10202)).toBeUndefined();
    expect(index.byPort.get(10204)?.route.id).toBe(moving.id);
    expect(index.byPort.get(10203)).toBeUndefined();
    expect(index.byId.has(deleted.id)).toBe(false);
    expect(update.departed.sort()).toEqual([moving.id, deleted.id].sort());
  });

  it("lets two routes swap ports within one change", () => {
    const a = makeRoute({ port: 10205 });
    const b = makeRoute({ port: 10206 });
    const index = new ServingIndex(portScope);
    index.apply({ from: 0, to: 1, upserts: [a, b], deletes: [] });
    index.apply({
      from: 1,
      to: 2,
      upserts: [
        { ...a, port: 10206 },
        { ...b, port: 10205 },
      ],
      deletes: [],
    });
    expect(index.byPort.get(10205)?.route.id).toBe(b.id);
    expect(index.byPort.get(10206)?.route.id).toBe(a.id);
    expect(index.byPort.size).toBe(2);
  });

  it("changes nothing while a change is prepared, and all of it at commit", () => {
    const first = makeRoute({ port: 10207 });
    const index = new ServingIndex(portScope);
    index.apply({ from: 0, to: 1, upserts: [first], deletes: [] });
    const added = [makeRoute({ port: 10208 }), makeRoute({ port: 10209 })];
    const slices = [index.prepare(added.slice(0, 1)), index.prepare(added.slice(1))];
    expect(index.byId.size).toBe(1);
    expect(index.version).toBe(1);
    index.commit(2, slices.flat(), [first.id]);
    expect([...index.byPort.keys()].sort()).toEqual([10208, 10209]);
    expect(index.version).toBe(2);
  });

  it("keeps a route's balancer while its upstreams stay the same", () => {
    const route = makeRoute({ port: 10210 });
    const index = new ServingIndex(portScope);
    const first = index.apply({ from: 0, to: 1, upserts: [route], deletes: [] });
    const balancer = index.byId.get(route.id)?.balancer;
    expect(first.started.map((served) => served.balancer)).toEqual([balancer]);
    const relabelled = index.apply({
      from: 1,
      to: 2,
      upserts: [{ ...route, labels: { a: "b" } }],
      deletes: [],
    });
    expect(index.byId.get(route.id)?.balancer).toBe(balancer);
    expect(relabelled.started).toEqual([]);
    expect(relabelled.retired).toEqual([]);
    const moved = index.apply({
      from: 2,
      to: 3,
      upserts: [{ ...route, upstreams: [{ host: "10.0.0.9", port: 1, weight: 1 }] }],
      deletes: [],
    });
    expect(index.byId.get(route.id)?.balancer).not.toBe(balancer);
    expect(moved.retired).toEqual([balancer]);
    const deleted = index.apply({ from: 3, to: 4, upserts: [], deletes: [route.id] });
    expect(deleted.retired).toEqual([moved.started[0]?.balancer]);
  });

  it("refuses routes it cannot serve safely, and serves the rest", () => {
    const good = makeRoute({ port: 10220 });
    const bad = [
      makeRoute({ port: 10221, protocol: "h2" }),
      makeRoute({
        port: 10222,
        health_check: { path: "/h\r\nX: y", interval_s: 5, max_wait_s: 1 },
      }),
      makeRoute({ port: 10223, upstreams: [{ host: "a b", port: 1, weight: 1 }] }),
      makeRoute({ port: 30000 }),
      makeRoute({ port: 10224, allowed_client_ips: ["not-an-ip"] }),
    ];
    const index = new ServingIndex(portScope);
    const update = index.apply({ from: 0, to: 1, upserts: [good, ...bad], deletes: [] });
    expect([...index.byId.keys()]).toEqual([good.id]);
    expect(update.refused.map((entry) => entry.id)).toEqual(bad.map((route) => route.id));
  });

  it("finds wildcard routes by Host, case-insensitive, any port ignored", () => {
    expect(subdomainOfHost("Abc.Apps.Test:8080", "apps.test")).toBe("abc");
    expect(subdomainOfHost("abc.apps.test.", "apps.test")).toBe("abc");
    expect(subdomainOfHost("a.b.apps.test", "apps.test")).toBeUndefined();
    expect(subdomainOfHost("apps.test", "apps.test")).toBeUndefined();
    expect(subdomainOfHost("evilapps.test", "apps.test")).toBeUndefined();
  });
});

function served(overrides: Parameters<typeof makeRoute>[0] = {}): ServedRoute {
  const route = makeRoute({ port: 10250, ...overrides });
  const index = new ServingIndex(portScope);
  index.apply({ from: 0, to: 1, upserts: [route], deletes: [] });
  const result = index.byId.get(route.id);
  if (result === undefined) throw new Error("route not served");
  return result;
}

/** Accepts "good-<route id>" for that route only. */
const verifier: RouteTokenVerifier = {
  verify: (token, routeId): Promise<AccessPermit | undefined> =>
    Promise.resolve(
      token === `good-${routeId}`
        ? { routeId, userId: null, exp: 2_000_000_000, tokenId: "j" }
        : undefined,
    ),
};

describe("the access decision", () => {
  it("refuses clients outside allowed_client_ips first, even on public routes", async () => {
    const route = served({ open_to_public: true, allowed_client_ips: ["10.0.0.0/8"] });
    expect(
      await decideAccess(
        route,
        "192.168.1.1",
        { cookieToken: undefined, bearerToken: undefined },
        verifier,
      ),
    ).toEqual({
      allowed: false,
      status: 403,
      reason: "client_ip",
    });
    expect(
      (
        await decideAccess(
          route,
          "10.1.2.3",
          { cookieToken: undefined, bearerToken: undefined },
          verifier,
        )
      ).allowed,
    ).toBe(true);
    expect(
      (
        await decideAccess(
          route,
          "::ffff:10.1.2.3",
          { cookieToken: undefined, bearerToken: undefined },
          verifier,
        )
      ).allowed,
    ).toBe(true);
  });

  it("needs a token of this route unless the route is public", async () => {
    const route = served();
    const other = served();
    const none = { cookieToken: undefined, bearerToken: undefined };
    expect(await decideAccess(route, "1.2.3.4", none, verifier)).toMatchObject({
      status: 401,
      reason: "missing_token",
    });
    expect(
      await decideAccess(
        route,
        "1.2.3.4",
        { cookieToken: `good-${other.route.id}`, bearerToken: undefined },
        verifier,
      ),
    ).toMatchObject({ status: 401, reason: "invalid_token" });
    expect(
      await decideAccess(
        route,
        "1.2.3.4",
        { cookieToken: `good-${route.route.id}`, bearerToken: undefined },
        verifier,
      ),
    ).toEqual({ allowed: true, stripPermitCookie: true, stripAuthorization: false });
    expect(
      await decideAccess(
        route,
        "1.2.3.4",
        { cookieToken: undefined, bearerToken: `good-${route.route.id}` },
        verifier,
      ),
    ).toEqual({ allowed: true, stripPermitCookie: false, stripAuthorization: true });
  });

  it("lets an app's own bearer credentials through beside a valid permit cookie", async () => {
    const route = served();
    expect(
      await decideAccess(
        route,
        "1.2.3.4",
        { cookieToken: `good-${route.route.id}`, bearerToken: "app-key" },
        verifier,
      ),
    ).toEqual({ allowed: true, stripPermitCookie: true, stripAuthorization: false });
    expect(
      await decideAccess(
        served({ open_to_public: true }),
        "1.2.3.4",
        { cookieToken: undefined, bearerToken: "app-key" },
        verifier,
      ),
    ).toEqual({
      allowed: true,
      stripPermitCookie: false,
      stripAuthorization: false,
    });
  });

  it("reads the route's permit cookie and a bearer token", () => {
    const credentials = credentialsOf(
      { cookie: "a=1; appproxy_permit_x=tok.en-_; b=2", authorization: "Bearer abc.def" },
      "appproxy_permit_x",
    );
    expect(credentials).toEqual({ cookieToken: "tok.en-_", bearerToken: "abc.def" });
    expect(credentialsOf({ authorization: "Basic Zm9vOmJhcg==" }, "p")).toEqual({
      cookieToken: undefined,
      bearerToken: undefined,
    });
  });
});

describe("request headers going upstream", () => {
  const base = {
    peerAddress: "203.0.113.7",
    peerTrusted: false,
    proto: "https" as const,
    stripAuthorization: false,
  };

  it("drops hop-by-hop headers and those Connection names", () => {
    const headers = upstreamRequestHeaders(
      {
        host: "h",
        connection: "keep-alive, x-secret",
        "keep-alive": "5",
        "x-secret": "1",
        te: "trailers",
        accept: "*/*",
      },
      base,
    );
    expect(headers).toEqual({
      host: "h",
      accept: "*/*",
      "x-forwarded-for": "203.0.113.7",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "h",
    });
  });

  it("believes X-Forwarded-* only from a trusted proxy", () => {
    const incoming = {
      host: "h",
      "x-forwarded-for": "1.1.1.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "f",
    };
    expect(upstreamRequestHeaders(incoming, base)).toMatchObject({
      "x-forwarded-for": "203.0.113.7",
      "x-forwarded-proto": "https",
      "x-forwarded-host": "h",
    });
    expect(upstreamRequestHeaders(incoming, { ...base, peerTrusted: true })).toMatchObject({
      "x-forwarded-for": "1.1.1.1, 203.0.113.7",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "f",
    });
  });

  it("takes the permit cookie and a bearer access token out, and keeps the rest", () => {
    const headers = upstreamRequestHeaders(
      { cookie: "a=1; appproxy_permit_x=t; b=%20", authorization: "Bearer t" },
      { ...base, permitCookie: "appproxy_permit_x", stripAuthorization: true },
    );
    expect(headers.cookie).toBe("a=1; b=%20");
    expect(headers.authorization).toBeUndefined();
    expect(withoutCookie("appproxy_permit_x=t", "appproxy_permit_x")).toBeUndefined();
  });

  it("keeps the upgrade of a WebSocket request", () => {
    const headers = upstreamRequestHeaders(
      { connection: "Upgrade", upgrade: "websocket", "sec-websocket-key": "k" },
      { ...base, upgrade: "websocket" },
    );
    expect(headers).toMatchObject({
      connection: "upgrade",
      upgrade: "websocket",
      "sec-websocket-key": "k",
    });
  });
});

describe("the setup path's redirect", () => {
  it("stays on the route", () => {
    expect(sameRouteRedirect(null)).toBe("/");
    expect(sameRouteRedirect("/lab/tree?a=1#x")).toBe("/lab/tree?a=1#x");
    for (const away of [
      "//evil.test/",
      "/\\evil.test",
      "https://evil.test/",
      "evil",
      "/\t/evil.test",
      "javascript:alert(1)",
    ]) {
      expect(sameRouteRedirect(away)).toBeUndefined();
    }
  });
});
