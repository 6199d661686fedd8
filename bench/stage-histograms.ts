/**
 * The coordinator's own account of where a change's time went, read from two scrapes of
 * /metrics around a phase: `appproxy_change_stage_seconds{stage}` (src/ops/change-stages.ts) and
 * the garbage collector's `nodejs_gc_duration_seconds{kind}`. Quantiles are interpolated in the
 * bucket that holds them, as PromQL's histogram_quantile does; a histogram keeps no maximum, so
 * "max" is the upper bound of the highest bucket the phase reached.
 */
import { CHANGE_STAGES } from "../src/ops/change-stages.js";

export interface BucketSummary {
  n: number;
  p50: number;
  p99: number;
  /** Upper bound of the highest non-empty bucket (ms); Infinity past the last bound. */
  maxBound: number;
  /** Sum of the observations (ms). */
  sum: number;
}

interface Histogram {
  buckets: Array<[le: number, count: number]>;
  sum: number;
  count: number;
}

/** One series of a histogram in Prometheus text, selected by a label. */
function readHistogram(text: string, name: string, label: string, value: string): Histogram {
  const buckets: Array<[number, number]> = [];
  let sum = 0;
  let count = 0;
  const tag = `${label}="${value}"`;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || !line.includes(tag)) continue;
    const n = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (line.startsWith(`${name}_bucket{`)) {
      const le = /le="([^"]+)"/.exec(line)![1]!;
      buckets.push([le === "+Inf" ? Infinity : Number(le), n]);
    } else if (line.startsWith(`${name}_sum{`)) sum = n;
    else if (line.startsWith(`${name}_count{`)) count = n;
  }
  return { buckets, sum, count };
}

function difference(after: Histogram, before: Histogram): Histogram {
  const was = new Map(before.buckets);
  return {
    buckets: after.buckets.map(([le, c]) => [le, c - (was.get(le) ?? 0)]),
    sum: after.sum - before.sum,
    count: after.count - before.count,
  };
}

/** The q-quantile (0–1) in ms, interpolated linearly inside its bucket. */
function quantile(h: Histogram, q: number): number {
  const rank = q * h.count;
  let lower = 0;
  let below = 0;
  for (const [le, cumulative] of h.buckets) {
    if (cumulative >= rank) {
      if (le === Infinity) return lower * 1000;
      const inBucket = cumulative - below;
      const share = inBucket > 0 ? (rank - below) / inBucket : 0;
      return (lower + (le - lower) * share) * 1000;
    }
    lower = le;
    below = cumulative;
  }
  return NaN;
}

function summarizeHistogram(h: Histogram): BucketSummary {
  let maxBound = NaN;
  let below = 0;
  for (const [le, cumulative] of h.buckets) {
    if (cumulative > below) maxBound = le * 1000;
    below = cumulative;
  }
  return {
    n: h.count,
    p50: quantile(h, 0.5),
    p99: quantile(h, 0.99),
    maxBound,
    sum: h.sum * 1000,
  };
}

/** Each stage of a change during the phase between the scrapes `before` and `after`. */
export function stagesBetween(before: string, after: string): Record<string, BucketSummary> {
  const name = "appproxy_change_stage_seconds";
  return Object.fromEntries(
    CHANGE_STAGES.map((stage) => [
      stage,
      summarizeHistogram(
        difference(
          readHistogram(after, name, "stage", stage),
          readHistogram(before, name, "stage", stage),
        ),
      ),
    ]),
  );
}

/** Garbage collections during the phase, by kind (minor, major, incremental, weakcb). */
export function gcBetween(before: string, after: string): Record<string, BucketSummary> {
  const name = "nodejs_gc_duration_seconds";
  const kinds = ["minor", "major", "incremental", "weakcb"];
  return Object.fromEntries(
    kinds.map((kind) => [
      kind,
      summarizeHistogram(
        difference(
          readHistogram(after, name, "kind", kind),
          readHistogram(before, name, "kind", kind),
        ),
      ),
    ]),
  );
}
