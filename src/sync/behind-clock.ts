/**
 * When the hub processed each range of versions (on a monotonic clock): tells how long a worker
 * holding a given version has been behind, so that its empty diff can be timed from the first
 * change it has not seen. Ranges are kept in processing order (their heads ascend) and forgotten
 * once older than the longest wait that asks about them.
 */
export class BehindClock {
  private readonly heads: number[] = [];
  private readonly times: number[] = [];
  /** Offset of the oldest range still kept (ranges before it are forgotten lazily). */
  private start = 0;
  /** The head of the newest forgotten range. */
  private forgottenHead = -Infinity;

  /** Every version up to `head` was processed at `atMs`. */
  processed(head: number, atMs: number): void {
    const last = this.heads.length - 1;
    if (last >= this.start && head <= this.heads[last]!) return;
    this.heads.push(head);
    this.times.push(atMs);
  }

  /**
   * When the first version after `version` was processed: -Infinity when that was before the
   * oldest range kept, undefined when no later version was processed.
   */
  behindSince(version: number): number | undefined {
    if (version < this.forgottenHead) return -Infinity;
    let lo = this.start;
    let hi = this.heads.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.heads[mid]! > version) hi = mid;
      else lo = mid + 1;
    }
    return lo < this.heads.length ? this.times[lo] : undefined;
  }

  /** Forgets ranges processed before `atMs`; a version they cover counts as behind for ever. */
  forgetBefore(atMs: number): void {
    while (this.start < this.heads.length && this.times[this.start]! < atMs) {
      this.forgottenHead = this.heads[this.start]!;
      this.start += 1;
    }
    // Compact now and then, so that the arrays do not grow with the process's age.
    if (this.start > 1024 && this.start * 2 > this.heads.length) {
      this.heads.splice(0, this.start);
      this.times.splice(0, this.start);
      this.start = 0;
    }
  }
}
