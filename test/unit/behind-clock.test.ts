import { describe, expect, it } from "vitest";
import { BehindClock } from "../../src/sync/behind-clock.js";

describe("how long a worker has been behind", () => {
  it("is timed from the range that brought the first version the worker lacks", () => {
    const clock = new BehindClock();
    clock.processed(3, 1000);
    clock.processed(5, 1100);
    clock.processed(9, 1200);
    expect(clock.behindSince(0)).toBe(1000);
    expect(clock.behindSince(2)).toBe(1000);
    expect(clock.behindSince(3)).toBe(1100);
    expect(clock.behindSince(4)).toBe(1100);
    expect(clock.behindSince(5)).toBe(1200);
    expect(clock.behindSince(8)).toBe(1200);
    expect(clock.behindSince(9)).toBeUndefined();
    expect(clock.behindSince(12)).toBeUndefined();
  });

  it("ignores a range that adds no version", () => {
    const clock = new BehindClock();
    clock.processed(3, 1000);
    clock.processed(3, 1500);
    clock.processed(2, 1600);
    expect(clock.behindSince(2)).toBe(1000);
    expect(clock.behindSince(3)).toBeUndefined();
  });

  it("counts a worker behind since before the oldest range kept as behind for ever", () => {
    const clock = new BehindClock();
    clock.processed(3, 1000);
    clock.processed(5, 1100);
    clock.processed(9, 1200);
    clock.forgetBefore(1150);
    expect(clock.behindSince(2)).toBe(-Infinity);
    expect(clock.behindSince(4)).toBe(-Infinity);
    expect(clock.behindSince(5)).toBe(1200);
    clock.forgetBefore(5000);
    expect(clock.behindSince(8)).toBe(-Infinity);
    expect(clock.behindSince(9)).toBeUndefined();
    clock.processed(10, 5100);
    expect(clock.behindSince(9)).toBe(5100);
  });

  it("keeps answering right across the compaction of a long run", () => {
    const clock = new BehindClock();
    for (let v = 1; v <= 5000; v++) {
      clock.processed(v, v * 10);
      clock.forgetBefore(v * 10 - 1000);
    }
    expect(clock.behindSince(4998)).toBe(49_990);
    expect(clock.behindSince(4950)).toBe(49_510);
    expect(clock.behindSince(4800)).toBe(-Infinity);
  });
});
