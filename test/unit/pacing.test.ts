import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { inSlices } from "../../src/sync/pacing.js";

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

const items = Array.from({ length: 250 }, (_, i) => i);

describe("work in slices", () => {
  it("does the first slice at once and the rest spread over the given time, in order", () => {
    const done: number[] = [];
    inSlices(items, (i) => done.push(i), { slice: 100, spreadMs: 300, maxPauseMs: 1000 });
    expect(done).toHaveLength(100);
    vi.advanceTimersByTime(99);
    expect(done).toHaveLength(100);
    vi.advanceTimersByTime(1);
    expect(done).toHaveLength(200);
    vi.advanceTimersByTime(100);
    expect(done).toEqual(items);
  });

  it("keeps slices no further apart than maxPauseMs", () => {
    const done: number[] = [];
    inSlices(items, (i) => done.push(i), { slice: 100, spreadMs: 60_000, maxPauseMs: 20 });
    vi.advanceTimersByTime(40);
    expect(done).toEqual(items);
  });

  it("runs later slices through the given scheduler, and stops when told", () => {
    const done: number[] = [];
    const scheduled: Array<() => void> = [];
    let stopped = false;
    inSlices(items, (i) => done.push(i), {
      slice: 100,
      spreadMs: 30,
      maxPauseMs: 10,
      schedule: (run) => scheduled.push(run),
      stopped: () => stopped,
    });
    vi.advanceTimersByTime(10);
    expect(done).toHaveLength(100);
    expect(scheduled).toHaveLength(1);
    stopped = true;
    scheduled.shift()!();
    expect(done).toHaveLength(200);
    vi.advanceTimersByTime(100);
    expect(scheduled).toHaveLength(0);
    expect(done).toHaveLength(200);
  });

  it("does a small fleet in one turn", () => {
    const done: number[] = [];
    inSlices([1, 2, 3], (i) => done.push(i), { slice: 100, spreadMs: 300, maxPauseMs: 20 });
    expect(done).toEqual([1, 2, 3]);
    expect(vi.getTimerCount()).toBe(0);
  });
});
