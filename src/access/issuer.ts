import { randomUUID } from "node:crypto";
import { SignJWT } from "jose";
import { ACCESS_TOKEN_ALG, type AccessKeyRing } from "./keys.js";

export interface IssuedAccessToken {
  token: string;
  /** The token's `exp`, in seconds since the epoch. */
  exp: number;
  expiresAt: Date;
}

/**
 * Signs access tokens: a JWT for one route, with `route`, `sub` (only when there is a user),
 * `iat`, `exp` and a fresh `jti`, signed with the ring's signing key and naming it in `kid`.
 */
export class AccessTokenIssuer {
  constructor(private readonly ring: AccessKeyRing) {}

  /** A token valid for `ttlS` seconds from `now`. */
  issue(
    routeId: string,
    userId: string | null,
    ttlS: number,
    now: Date = new Date(),
  ): Promise<IssuedAccessToken> {
    const iat = Math.floor(now.getTime() / 1000);
    return this.issueUntil(routeId, userId, iat + ttlS, now);
  }

  /** A token valid until `exp` (seconds since the epoch), as a caller that names the end asks. */
  async issueUntil(
    routeId: string,
    userId: string | null,
    exp: number,
    now: Date = new Date(),
  ): Promise<IssuedAccessToken> {
    const iat = Math.floor(now.getTime() / 1000);
    const { kid, privateKey } = this.ring.signing;
    const jwt = new SignJWT({ route: routeId })
      .setProtectedHeader({ alg: ACCESS_TOKEN_ALG, kid, typ: "JWT" })
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID());
    if (userId !== null) jwt.setSubject(userId);
    return { token: await jwt.sign(privateKey), exp, expiresAt: new Date(exp * 1000) };
  }
}
