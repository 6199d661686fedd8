/** Beyond this many attempts the ceiling is pinned at the maximum anyway; it keeps 2^n finite. */
const MAX_DOUBLINGS = 30;

/**
 * The delay before reconnect attempt `attempt` (0 for the first after a success), with "full
 * jitter": uniform in [0, min(maxMs, minMs * 2^attempt)]. Spreading the whole interval, rather
 * than adding a little noise to a fixed delay, keeps a fleet of workers that lost the same
 * coordinator from coming back in step. Pure given `random`.
 */
export function fullJitterDelay(
  attempt: number,
  minMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(Math.max(attempt, 0), MAX_DOUBLINGS));
  return Math.floor(random() * ceiling);
}
