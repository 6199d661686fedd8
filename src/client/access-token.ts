import { createLocalJWKSet, errors, jwtVerify, type JWTVerifyGetKey } from "jose";
import type { AccessKeySet } from "./access-keys.js";

/** What a valid access token grants: entry to one route, for one user or none, until `expiresAt`. */
export interface AccessPermit {
  /** The route the token was issued for (its `route` claim). */
  routeId: string;
  /** Its `sub`: the user the Manager named, or null. */
  userId: string | null;
  /** Its `exp`, in seconds since the epoch: a permit cookie should last until then. */
  exp: number;
  /** Its `jti`. */
  tokenId: string;
}

/**
 * Why a token was refused:
 * - `no_keys`: the verifier has not been given any keys yet;
 * - `malformed`: not a JWT, an algorithm other than EdDSA (`none` included), or a claim missing;
 * - `unknown_key`: signed by a key the current key set does not publish;
 * - `bad_signature`: the signature does not match the key its `kid` names;
 * - `expired`: its `exp` has passed (or its `nbf` has not come);
 * - `other_route`: valid, but for another route.
 */
export type AccessDenial =
  "no_keys" | "malformed" | "unknown_key" | "bad_signature" | "expired" | "other_route";

export type AccessTokenCheck =
  { ok: true; permit: AccessPermit } | { ok: false; reason: AccessDenial };

export interface AccessTokenVerifierOptions {
  /** Leeway for `exp` against this machine's clock, in seconds. Default 0. */
  clockToleranceS?: number;
  /** The current time (tests). Default: the system clock. */
  now?: () => Date;
}

/**
 * Checks the coordinator's access tokens offline: an EdDSA (Ed25519) JWT, signed by a key of the
 * current key set, not expired, whose `route` claim is the route being entered.
 *
 * Feed it the key set from the worker's registration answer and every `hello` (the client's
 * `accessKeys` event, or the `accessKeys` field of its `registered` and `connected` events);
 * `setKeys` swaps the set at once, and tokens are checked against the newest set given.
 *
 * ```ts
 * const verifier = new AccessTokenVerifier();
 * client.on("accessKeys", (keys) => verifier.setKeys(keys));
 * const check = await verifier.verify(token, route.id);
 * if (!check.ok) deny(check.reason);
 * ```
 */
export class AccessTokenVerifier {
  #keys: JWTVerifyGetKey | undefined;
  readonly #clockToleranceS: number;
  readonly #now: () => Date;

  constructor(keys?: AccessKeySet, options: AccessTokenVerifierOptions = {}) {
    this.#clockToleranceS = options.clockToleranceS ?? 0;
    this.#now = options.now ?? (() => new Date());
    if (keys !== undefined) this.setKeys(keys);
  }

  /** Replaces the key set: tokens of keys no longer in it are refused from now on. */
  setKeys(keys: AccessKeySet): void {
    this.#keys = createLocalJWKSet({ keys: keys.keys.map((key) => ({ ...key })) });
  }

  /** Whether `token` admits its bearer to route `routeId`. Never throws for a bad token. */
  async verify(token: string, routeId: string): Promise<AccessTokenCheck> {
    const keys = this.#keys;
    if (keys === undefined) return { ok: false, reason: "no_keys" };
    let payload;
    try {
      ({ payload } = await jwtVerify(token, keys, {
        algorithms: ["EdDSA"],
        requiredClaims: ["exp", "jti", "route"],
        clockTolerance: this.#clockToleranceS,
        currentDate: this.#now(),
      }));
    } catch (error) {
      return { ok: false, reason: denialOf(error) };
    }
    const { route, sub, exp, jti } = payload;
    if (typeof route !== "string" || typeof jti !== "string" || typeof exp !== "number") {
      return { ok: false, reason: "malformed" };
    }
    if (sub !== undefined && typeof sub !== "string") return { ok: false, reason: "malformed" };
    if (route.toLowerCase() !== routeId.toLowerCase()) return { ok: false, reason: "other_route" };
    return { ok: true, permit: { routeId: route, userId: sub ?? null, exp, tokenId: jti } };
  }
}

function denialOf(error: unknown): AccessDenial {
  if (error instanceof errors.JWTExpired) return "expired";
  if (error instanceof errors.JWKSNoMatchingKey) return "unknown_key";
  if (error instanceof errors.JWSSignatureVerificationFailed) return "bad_signature";
  if (error instanceof errors.JWTClaimValidationFailed && error.claim === "nbf") return "expired";
  // Every other JOSEError (bad algorithm, missing claim, not a JWS), and what jose throws on input
  // it cannot take apart at all.
  return "malformed";
}
