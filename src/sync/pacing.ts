/**
 * Does `each` for every item a slice at a time, the slices spread over `spreadMs` (but never
 * more than `maxPauseMs` apart): work for the whole fleet at once would hold the event loop, and
 * the answers it draws (acknowledgements, pongs) would come back in one burst as well.
 */
export function inSlices<T>(
  items: readonly T[],
  each: (item: T) => void,
  options: {
    slice: number;
    spreadMs: number;
    maxPauseMs: number;
    /** Runs a later slice; the default runs it directly. */
    schedule?: (run: () => void) => void;
    stopped?: () => boolean;
  },
): void {
  const { slice, spreadMs, maxPauseMs, schedule = (run) => run(), stopped = () => false } = options;
  const slices = Math.ceil(items.length / slice);
  const pause = Math.min(maxPauseMs, spreadMs / Math.max(1, slices));
  const runFrom = (from: number) => {
    const end = Math.min(from + slice, items.length);
    for (let i = from; i < end; i++) each(items[i]!);
    if (end < items.length && !stopped()) {
      setTimeout(() => schedule(() => runFrom(end)), pause).unref();
    }
  };
  runFrom(0);
}
