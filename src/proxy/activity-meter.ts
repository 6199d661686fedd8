/**
 * Tells the client library which routes moved bytes. The client merges reports and sends them
 * every few seconds; this keeps the data path from calling it (and allocating a Date) per chunk:
 * one report per route per `intervalMs` says the same.
 */
export class ActivityMeter {
  readonly #lastReported = new Map<string, number>();

  constructor(
    private readonly report: (routeId: string, at: Date) => void,
    private readonly intervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes moved on the route just now. */
  moved(routeId: string): void {
    const now = this.now();
    const last = this.#lastReported.get(routeId);
    if (last !== undefined && now - last < this.intervalMs) return;
    this.#lastReported.set(routeId, now);
    this.report(routeId, new Date(now));
  }

  /** The route is no longer served here. */
  forget(routeId: string): void {
    this.#lastReported.delete(routeId);
  }
}
