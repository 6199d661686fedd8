/** Inclusive runs of free ports, `[first, last]`. */
export type PortRun = readonly [first: number, last: number];

/**
 * Some of a worker's free ports, as sorted, disjoint runs: what placement was told of them. The
 * database keeps a worker's free ports as one `int4multirange` and hands placement its lowest
 * runs (at least as many as the routes being placed) and the runs holding any port asked for,
 * so the lowest free port placement finds is the worker's lowest, and an asked port missing
 * here is taken.
 */
export class FreePorts {
  private readonly runs: Array<[number, number]>;

  constructor(runs: Iterable<PortRun>) {
    this.runs = [...runs].map(([a, b]): [number, number] => [a, b]).sort((x, y) => x[0] - y[0]);
  }

  /** From PostgreSQL's text of an int4multirange (canonical: `{[a,b),[c,d)}`); null is none. */
  static parse(text: string | null | undefined): FreePorts {
    const runs: PortRun[] = [];
    for (const m of (text ?? "").matchAll(/([[(])(-?\d*),(-?\d*)([\])])/g)) {
      const first = Number(m[2]) + (m[1] === "(" ? 1 : 0);
      const last = Number(m[3]) - (m[4] === ")" ? 1 : 0);
      if (m[2] === "" || m[3] === "") throw new TypeError(`an unbounded port range: ${text}`);
      if (first <= last) runs.push([first, last]);
    }
    return new FreePorts(runs);
  }

  has(port: number): boolean {
    return this.indexOf(port) >= 0;
  }

  /** The lowest free port, or undefined when none is known. */
  lowest(): number | undefined {
    return this.runs[0]?.[0];
  }

  /** The lowest free port not in `avoid`, else the lowest; undefined when none is known. */
  lowestNotIn(avoid: ReadonlySet<number>): number | undefined {
    if (avoid.size === 0) return this.lowest();
    for (const [first, last] of this.runs) {
      // Each port skipped is one of `avoid`: the walk is as long as that set at most.
      for (let port = first; port <= last; port++) if (!avoid.has(port)) return port;
    }
    return this.lowest();
  }

  /** Marks `port` taken; false when it was not free. */
  take(port: number): boolean {
    const i = this.indexOf(port);
    if (i < 0) return false;
    const [first, last] = this.runs[i]!;
    if (first === last) this.runs.splice(i, 1);
    else if (port === first) this.runs[i]![0] = port + 1;
    else if (port === last) this.runs[i]![1] = port - 1;
    else this.runs.splice(i, 1, [first, port - 1], [port + 1, last]);
    return true;
  }

  /** Marks `port` free again (undoing a `take`). */
  give(port: number): void {
    if (this.has(port)) return;
    let i = 0;
    while (i < this.runs.length && this.runs[i]![0] < port) i++;
    const before = this.runs[i - 1];
    const after = this.runs[i];
    if (before && before[1] === port - 1 && after && after[0] === port + 1) {
      before[1] = after[1];
      this.runs.splice(i, 1);
    } else if (before && before[1] === port - 1) before[1] = port;
    else if (after && after[0] === port + 1) after[0] = port;
    else this.runs.splice(i, 0, [port, port]);
  }

  /** The runs known, lowest first (copies). */
  toRuns(): PortRun[] {
    return this.runs.map(([a, b]) => [a, b] as const);
  }

  /** Binary search: the index of the run holding `port`, or -1. */
  private indexOf(port: number): number {
    let lo = 0;
    let hi = this.runs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const [first, last] = this.runs[mid]!;
      if (port < first) hi = mid - 1;
      else if (port > last) lo = mid + 1;
      else return mid;
    }
    return -1;
  }
}
