/**
 * Traffic seen per route since the last activity frame. Only the latest time per route matters to
 * the coordinator (it keeps `last_activity_at`), so repeated reports collapse into one entry.
 */
export class ActivityBuffer {
  readonly #lastSeen = new Map<string, number>();

  get size(): number {
    return this.#lastSeen.size;
  }

  record(routeId: string, at: Date): void {
    const time = at.getTime();
    if (Number.isNaN(time)) throw new RangeError(`invalid activity time for route ${routeId}`);
    const known = this.#lastSeen.get(routeId);
    if (known === undefined || time > known) this.#lastSeen.set(routeId, time);
  }

  /** Empties the buffer and returns its content as the `routes` of an activity frame. */
  take(): Record<string, string> {
    const routes: Record<string, string> = {};
    for (const [routeId, time] of this.#lastSeen) routes[routeId] = new Date(time).toISOString();
    this.#lastSeen.clear();
    return routes;
  }
}
