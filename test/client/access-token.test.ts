import { SignJWT, UnsecuredJWT, base64url, decodeProtectedHeader, type JSONWebKeySet } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { AccessTokenIssuer } from "../../src/access/issuer.js";
import { AccessKeyRing } from "../../src/access/keys.js";
import { AccessTokenVerifier, parseCoordinatorFrame } from "../../src/client/index.js";
import { parseRegistrationAnswer } from "../../src/client/registration.js";

const ROUTE = "0d5b3c4e-1f2a-4b6c-8d9e-0a1b2c3d4e5f";
const OTHER_ROUTE = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d";
const SEEDS = [
  "zedZ4IAMfzTuL4_I3wRr1nUYV_MYpF3v1IFb66TGM6k",
  "Jq3x0Bk9l7m2PmV6yH5aT1cR8uW4eZ0nD3sF6gJ9kLw",
];

let ring: AccessKeyRing;
let otherRing: AccessKeyRing;
let issuer: AccessTokenIssuer;

beforeAll(async () => {
  ring = await AccessKeyRing.fromSeeds([SEEDS[0]!]);
  otherRing = await AccessKeyRing.fromSeeds([SEEDS[1]!]);
  issuer = new AccessTokenIssuer(ring);
});

const verifier = (keys: JSONWebKeySet = ring.jwks) => new AccessTokenVerifier(keys);

describe("AccessTokenVerifier", () => {
  it("admits a token of a published key for its route", async () => {
    const { token, exp } = await issuer.issue(ROUTE, "u1", 600);
    const check = await verifier().verify(token, ROUTE);
    expect(check.ok && check.permit).toMatchObject({ routeId: ROUTE, userId: "u1", exp });
  });

  it("refuses a token for another route", async () => {
    const { token } = await issuer.issue(ROUTE, null, 600);
    expect(await verifier().verify(token, OTHER_ROUTE)).toEqual({
      ok: false,
      reason: "other_route",
    });
  });

  it("refuses an expired token, and admits it within the clock tolerance", async () => {
    const { token } = await issuer.issue(ROUTE, null, 60, new Date(Date.now() - 120_000));
    expect(await verifier().verify(token, ROUTE)).toEqual({ ok: false, reason: "expired" });
    const lenient = new AccessTokenVerifier(ring.jwks, { clockToleranceS: 3600 });
    expect((await lenient.verify(token, ROUTE)).ok).toBe(true);
  });

  it("refuses a signature that does not match its key", async () => {
    const { token } = await issuer.issue(ROUTE, null, 600);
    const [head, , signature] = token.split(".");
    const forgedPayload = base64url.encode(
      JSON.stringify({ route: OTHER_ROUTE, exp: 4_102_444_800, jti: "x" }),
    );
    expect(await verifier().verify(`${head}.${forgedPayload}.${signature}`, OTHER_ROUTE)).toEqual({
      ok: false,
      reason: "bad_signature",
    });
    // Signed by another key that claims the published key's kid.
    const kid = decodeProtectedHeader(token).kid!;
    const impostor = await new SignJWT({ route: ROUTE })
      .setProtectedHeader({ alg: "EdDSA", kid })
      .setExpirationTime("10m")
      .setJti("y")
      .sign(otherRing.signing.privateKey);
    expect(await verifier().verify(impostor, ROUTE)).toEqual({
      ok: false,
      reason: "bad_signature",
    });
  });

  it("refuses alg none and any algorithm but EdDSA", async () => {
    const kid = ring.signing.kid;
    const unsigned = new UnsecuredJWT({ route: ROUTE, jti: "z" }).setExpirationTime("10m").encode();
    const [, payload] = unsigned.split(".");
    const withKid = `${base64url.encode(JSON.stringify({ alg: "none", kid }))}.${payload}.`;
    for (const token of [unsigned, withKid]) {
      expect(await verifier().verify(token, ROUTE)).toEqual({ ok: false, reason: "malformed" });
    }
    // HS256 keyed with the public key's bytes: the classic confusion of a public key for a secret.
    const hs = await new SignJWT({ route: ROUTE })
      .setProtectedHeader({ alg: "HS256", kid })
      .setExpirationTime("10m")
      .setJti("h")
      .sign(new TextEncoder().encode(String(ring.jwks.keys[0]!.x)));
    expect(await verifier().verify(hs, ROUTE)).toEqual({ ok: false, reason: "malformed" });
  });

  it("refuses what is not a token, a token without its claims, and everything before keys", async () => {
    for (const token of ["", "abc", "a.b.c", "x".repeat(5000)]) {
      expect(await verifier().verify(token, ROUTE)).toEqual({ ok: false, reason: "malformed" });
    }
    const noRoute = await new SignJWT({})
      .setProtectedHeader({ alg: "EdDSA", kid: ring.signing.kid })
      .setExpirationTime("10m")
      .setJti("n")
      .sign(ring.signing.privateKey);
    const noExp = await new SignJWT({ route: ROUTE })
      .setProtectedHeader({ alg: "EdDSA", kid: ring.signing.kid })
      .setJti("e")
      .sign(ring.signing.privateKey);
    for (const token of [noRoute, noExp]) {
      expect(await verifier().verify(token, ROUTE)).toEqual({ ok: false, reason: "malformed" });
    }
    const { token } = await issuer.issue(ROUTE, null, 600);
    expect(await new AccessTokenVerifier().verify(token, ROUTE)).toEqual({
      ok: false,
      reason: "no_keys",
    });
  });

  it("takes new keys at runtime: unknown before, admitted after", async () => {
    const v = verifier();
    const { token } = await new AccessTokenIssuer(otherRing).issue(ROUTE, null, 600);
    expect(await v.verify(token, ROUTE)).toEqual({ ok: false, reason: "unknown_key" });
    v.setKeys({ keys: [...ring.jwks.keys, ...otherRing.jwks.keys] });
    expect((await v.verify(token, ROUTE)).ok).toBe(true);
  });
});

describe("AccessKeyRing", () => {
  it("signs with the first key and publishes each key once, by its thumbprint", async () => {
    const both = await AccessKeyRing.fromSeeds([SEEDS[1]!, SEEDS[0]!, SEEDS[1]!]);
    expect(both.signing.kid).toBe(otherRing.signing.kid);
    expect(both.jwks.keys.map((k) => k.kid)).toEqual([otherRing.signing.kid, ring.signing.kid]);
    expect(JSON.stringify(both.jwks)).not.toMatch(/"d"/);
  });
});

describe("access_keys in what the coordinator sends", () => {
  const hello = { type: "hello", protocol: 1, instance_id: "i", heartbeat_interval_s: 10 };

  it("is read from hello, and may be absent", () => {
    const withKeys = parseCoordinatorFrame(JSON.stringify({ ...hello, access_keys: ring.jwks }));
    expect(withKeys.kind === "frame" && withKeys.frame).toMatchObject({ access_keys: ring.jwks });
    const without = parseCoordinatorFrame(JSON.stringify(hello));
    expect(without.kind === "frame" && without.frame).not.toHaveProperty("access_keys");
  });

  it("makes a hello or a registration answer invalid when it is not a key set", () => {
    for (const bad of [null, [], { keys: {} }, { keys: [{}] }, { keys: [{ kty: "" }] }]) {
      const parsed = parseCoordinatorFrame(JSON.stringify({ ...hello, access_keys: bad }));
      expect(parsed.kind, JSON.stringify(bad)).toBe("invalid");
      expect(() =>
        parseRegistrationAnswer({
          worker: { id: "w", name: "w" },
          token: "t",
          stream_url: "ws://x",
          heartbeat_interval_s: 10,
          version: 0,
          routes: [],
          access_keys: bad,
        }),
      ).toThrow(/access_keys/);
    }
  });
});
