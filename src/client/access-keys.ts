import type { JSONWebKeySet, JWK } from "jose";
import { expectArray, expectNonEmptyString, expectObject } from "./shape.js";

/** The coordinator's public access-token keys: a JWK Set (RFC 7517), as `access_keys` carries it. */
export type AccessKeySet = JSONWebKeySet;

/**
 * Reads an `access_keys` field. Each key must be an object with a `kty`; its other members are
 * kept as given (the verifier decides which keys it can use).
 */
export function parseAccessKeySet(value: unknown, path: string): AccessKeySet {
  const set = expectObject(value, path);
  const keys = expectArray(set.keys, `${path}.keys`, (item, itemPath): JWK => {
    const key = expectObject(item, itemPath);
    expectNonEmptyString(key.kty, `${itemPath}.kty`);
    return { ...key } as JWK;
  });
  return { keys };
}
