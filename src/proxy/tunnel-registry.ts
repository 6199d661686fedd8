/** One long-lived proxied connection (WebSocket or TCP): both sockets, cut together. */
export interface Tunnel {
  readonly routeId: string;
  /** Destroys both sides; calling it on a closed tunnel does nothing. */
  close(): void;
}

/**
 * The open WebSocket and TCP tunnels per route, so that a route leaving this worker can have its
 * tunnels closed within DRAIN_S while every other route's tunnels stay untouched.
 */
export class TunnelRegistry {
  readonly #byRoute = new Map<string, Set<Tunnel>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #emptied = new Set<() => void>();
  #count = 0;

  get size(): number {
    return this.#count;
  }

  /** Registers an open tunnel; the returned function unregisters it (call it once, on close). */
  track(tunnel: Tunnel): () => void {
    let tunnels = this.#byRoute.get(tunnel.routeId);
    if (tunnels === undefined) {
      tunnels = new Set();
      this.#byRoute.set(tunnel.routeId, tunnels);
    }
    tunnels.add(tunnel);
    this.#count += 1;
    return () => {
      const set = this.#byRoute.get(tunnel.routeId);
      if (set === undefined || !set.delete(tunnel)) return;
      this.#count -= 1;
      if (set.size === 0) this.#byRoute.delete(tunnel.routeId);
      if (this.#count === 0) for (const notify of this.#emptied) notify();
    };
  }

  /** The route's tunnels open now are closed after `afterMs` if still open; new ones are not. */
  drainRoute(routeId: string, afterMs: number): void {
    const tunnels = this.#byRoute.get(routeId);
    if (tunnels === undefined || tunnels.size === 0) return;
    const doomed = [...tunnels];
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      for (const tunnel of doomed) tunnel.close();
    }, afterMs);
    timer.unref();
    this.#timers.add(timer);
  }

  /** Resolves once no tunnel is open, or after `timeoutMs` having closed those left. */
  async drainAll(timeoutMs: number): Promise<void> {
    if (this.#count > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.#emptied.delete(done);
          resolve();
        };
        const timer = setTimeout(done, timeoutMs);
        this.#emptied.add(done);
      });
    }
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    for (const tunnels of [...this.#byRoute.values()])
      for (const tunnel of [...tunnels]) tunnel.close();
  }
}
