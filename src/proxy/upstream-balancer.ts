import type { Upstream } from "../client/route.js";

/** How long an upstream that refused a connection is passed over, at first and at most. */
export const REFUSED_SKIP_MIN_MS = 1000;
export const REFUSED_SKIP_MAX_MS = 30_000;

interface Peer {
  readonly upstream: Upstream;
  /** Smooth weighted round robin's running score (nginx's `current_weight`). */
  current: number;
  /** Until when the peer is passed over after refusing connections (epoch ms). */
  refusedUntil: number;
  /** Consecutive refusals: the skip doubles with each. */
  refusals: number;
  /** False while the route's health check fails on it. */
  healthy: boolean;
}

/**
 * Chooses the upstream for each new request or connection of one route, by smooth weighted round
 * robin (nginx's: weights 3 and 1 give a a b a, never a a a b). Weight 0
 * takes no new traffic; an upstream that refused a connection is passed over for a while (longer
 * after each refusal in a row); an upstream failing its health check is out until it passes.
 */
export class UpstreamBalancer {
  readonly #peers: Peer[];

  constructor(upstreams: readonly Upstream[]) {
    this.#peers = upstreams.map((upstream) => ({
      upstream,
      current: 0,
      refusedUntil: 0,
      refusals: 0,
      healthy: true,
    }));
  }

  get upstreams(): readonly Upstream[] {
    return this.#peers.map((peer) => peer.upstream);
  }

  /**
   * The next upstream, or undefined when none may take traffic (all weight 0 or unhealthy). When
   * every candidate is being passed over after refusals, the one whose pause ends first is
   * tried rather than none: it may be back.
   */
  pick(now: number, exclude?: ReadonlySet<Upstream>): Upstream | undefined {
    let total = 0;
    let best: Peer | undefined;
    let soonest: Peer | undefined;
    for (const peer of this.#peers) {
      if (peer.upstream.weight <= 0 || !peer.healthy || exclude?.has(peer.upstream)) continue;
      if (peer.refusedUntil > now) {
        if (soonest === undefined || peer.refusedUntil < soonest.refusedUntil) soonest = peer;
        continue;
      }
      peer.current += peer.upstream.weight;
      total += peer.upstream.weight;
      if (best === undefined || peer.current > best.current) best = peer;
    }
    if (best === undefined) return soonest?.upstream;
    best.current -= total;
    return best.upstream;
  }

  /** The upstream refused (or timed out) a connection: pass it over for a while. */
  markRefused(upstream: Upstream, now: number): void {
    const peer = this.#peer(upstream);
    if (peer === undefined) return;
    peer.refusals += 1;
    const skip = Math.min(REFUSED_SKIP_MAX_MS, REFUSED_SKIP_MIN_MS * 2 ** (peer.refusals - 1));
    peer.refusedUntil = now + skip;
  }

  /** A connection to the upstream succeeded: it is no longer passed over. */
  markConnected(upstream: Upstream): void {
    const peer = this.#peer(upstream);
    if (peer === undefined || peer.refusals === 0) return;
    peer.refusals = 0;
    peer.refusedUntil = 0;
  }

  setHealthy(upstream: Upstream, healthy: boolean): void {
    const peer = this.#peer(upstream);
    if (peer !== undefined) peer.healthy = healthy;
  }

  isHealthy(upstream: Upstream): boolean {
    return this.#peer(upstream)?.healthy ?? false;
  }

  #peer(upstream: Upstream): Peer | undefined {
    return this.#peers.find((peer) => peer.upstream === upstream);
  }
}
