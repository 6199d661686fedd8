import { encodeWorkerFrame } from "./frames.js";

/**
 * The most JSON text one `activity` frame may carry. The coordinator closes the stream (1009) on
 * any inbound frame over 1 MiB; half of that is a margin no change of encoding will eat.
 */
export const ACTIVITY_FRAME_BUDGET_BYTES = 512 * 1024;

/** The most routes the coordinator takes in one `activity` frame (docs/stream.md); more is 4400. */
export const ACTIVITY_FRAME_MAX_ROUTES = 10_000;

/** `{"type":"activity","routes":{}}`: what every activity frame spends before its first route. */
const EMPTY_ACTIVITY_FRAME_BYTES = Buffer.byteLength(
  encodeWorkerFrame({ type: "activity", routes: {} }),
);

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

  /**
   * Removes entries, in the order their routes were first recorded, and returns them as the
   * `routes` of one activity frame whose JSON text is at most `budgetBytes` and which holds at
   * most `maxRoutes` (without limits: the whole buffer). What is not taken stays pending for the
   * next frame. At least one entry is taken, so an entry alone over the budget still goes out, in
   * a frame of its own.
   */
  take(
    budgetBytes = Number.POSITIVE_INFINITY,
    maxRoutes = Number.POSITIVE_INFINITY,
  ): Record<string, string> {
    const routes: Record<string, string> = {};
    let frameBytes = EMPTY_ACTIVITY_FRAME_BYTES;
    let count = 0;
    for (const [routeId, time] of this.#lastSeen) {
      const at = new Date(time).toISOString();
      // Measured as JSON writes it, in UTF-8 (ids need not be ASCII), with the comma before it.
      const entry = `${JSON.stringify(routeId)}:${JSON.stringify(at)}`;
      const entryBytes = Buffer.byteLength(entry) + (count === 0 ? 0 : 1);
      if (count > 0 && (count >= maxRoutes || frameBytes + entryBytes > budgetBytes)) break;
      routes[routeId] = at;
      frameBytes += entryBytes;
      count += 1;
      this.#lastSeen.delete(routeId);
    }
    return routes;
  }
}
