import { createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import { calculateJwkThumbprint, type JSONWebKeySet, type JWK } from "jose";

/** The algorithm of every access token: EdDSA over Ed25519 (RFC 8037). */
export const ACCESS_TOKEN_ALG = "EdDSA";

/** One access-token key: its private half, and the public half as workers see it. */
export interface AccessKey {
  /** The key's RFC 7638 thumbprint: the same key has the same `kid` on every instance. */
  readonly kid: string;
  readonly privateKey: KeyObject;
  readonly publicJwk: JWK;
}

/**
 * An Ed25519 private key in PKCS #8 is this fixed prefix followed by the 32-byte seed (RFC 8410):
 * the seed alone is the compact form the ACCESS_TOKEN_KEYS setting takes.
 */
const PKCS8_ED25519_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");
const SEED_BYTES = 32;

async function keyFromSeed(seed: string, position: number): Promise<AccessKey> {
  const raw = Buffer.from(seed, "base64url");
  if (raw.length !== SEED_BYTES) {
    throw new Error(`access-token key ${position + 1} is not ${SEED_BYTES} bytes of base64url`);
  }
  const privateKey = createPrivateKey({
    key: Buffer.concat([PKCS8_ED25519_PREFIX, raw]),
    format: "der",
    type: "pkcs8",
  });
  const { kty, crv, x } = createPublicKey(privateKey).export({ format: "jwk" });
  if (kty === undefined || crv === undefined || x === undefined) {
    throw new Error(`access-token key ${position + 1} has no Ed25519 public key`);
  }
  const kid = await calculateJwkThumbprint({ kty, crv, x }, "sha256");
  return {
    kid,
    privateKey,
    publicJwk: { kty, crv, x, kid, alg: ACCESS_TOKEN_ALG, use: "sig" },
  };
}

/**
 * The coordinator's access-token keys, held in memory for the life of the process. The first
 * signs every new token; all of them are published, so that tokens signed by a key that no
 * longer signs stay valid until they expire (rotation: see docs/access-tokens.md).
 */
export class AccessKeyRing {
  private constructor(
    readonly signing: AccessKey,
    readonly keys: readonly AccessKey[],
    /** The public keys as a JWKS, built once: sent in every hello and registration answer. */
    readonly jwks: Readonly<JSONWebKeySet>,
  ) {}

  /** The ring of the given Ed25519 seeds (base64url, 32 bytes each); duplicates count once. */
  static async fromSeeds(seeds: readonly string[]): Promise<AccessKeyRing> {
    if (seeds.length === 0) throw new Error("at least one access-token key is needed");
    const keys: AccessKey[] = [];
    for (const [position, seed] of seeds.entries()) {
      const key = await keyFromSeed(seed, position);
      if (!keys.some((k) => k.kid === key.kid)) keys.push(key);
    }
    const jwks = Object.freeze({ keys: keys.map((k) => Object.freeze({ ...k.publicJwk })) });
    return new AccessKeyRing(keys[0]!, keys, jwks);
  }
}
