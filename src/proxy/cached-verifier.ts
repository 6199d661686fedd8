import type { AccessPermit } from "../client/access-token.js";
import type { RouteTokenVerifier } from "./access.js";

/** Verified tokens kept: a browser sends its permit cookie with every request of a page. */
const MAX_ENTRIES = 10_000;

/**
 * Remembers tokens already verified for a route until they expire, so that a request with a
 * known permit costs a map lookup instead of an Ed25519 verification. Failures are not kept: a
 * token is only ever accepted by the verifier it wraps. `clear()` when the keys change.
 */
export class CachedTokenVerifier implements RouteTokenVerifier {
  readonly #permits = new Map<string, AccessPermit>();

  constructor(
    readonly inner: RouteTokenVerifier,
    private readonly now: () => number = Date.now,
  ) {}

  async verify(token: string, routeId: string): Promise<AccessPermit | undefined> {
    const key = `${routeId} ${token}`;
    const known = this.#permits.get(key);
    if (known !== undefined) {
      if (known.exp * 1000 > this.now()) return known;
      this.#permits.delete(key);
    }
    const permit = await this.inner.verify(token, routeId);
    if (permit === undefined) return undefined;
    if (this.#permits.size >= MAX_ENTRIES) {
      // Maps iterate in insertion order: the first key is the oldest entry.
      const oldest = this.#permits.keys().next().value;
      if (oldest !== undefined) this.#permits.delete(oldest);
    }
    this.#permits.set(key, permit);
    return permit;
  }

  clear(): void {
    this.#permits.clear();
  }
}
