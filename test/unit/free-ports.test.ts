import { describe, expect, it } from "vitest";
import { FreePorts } from "../../src/placement/free-ports.js";

describe("FreePorts", () => {
  it("reads PostgreSQL's text of an int4multirange, empty and null included", () => {
    expect(FreePorts.parse("{[10200,10300),[10400,10401)}").toRuns()).toEqual([
      [10200, 10299],
      [10400, 10400],
    ]);
    expect(FreePorts.parse("{}").toRuns()).toEqual([]);
    expect(FreePorts.parse(null).toRuns()).toEqual([]);
    // Inclusive and exclusive bounds alike, though PostgreSQL writes int ranges as [a,b).
    expect(FreePorts.parse("{(9,12]}").toRuns()).toEqual([[10, 12]]);
    expect(() => FreePorts.parse("{[10,)}")).toThrow(/unbounded/);
  });

  it("takes the lowest port, an asked port, and gives ports back, merging runs", () => {
    const free = new FreePorts([[10, 14]]);
    expect(free.lowest()).toBe(10);
    expect(free.take(10)).toBe(true);
    expect(free.take(12)).toBe(true);
    expect(free.take(12)).toBe(false);
    expect(free.take(99)).toBe(false);
    expect(free.toRuns()).toEqual([
      [11, 11],
      [13, 14],
    ]);
    expect(free.lowest()).toBe(11);
    expect(free.has(13)).toBe(true);
    expect(free.has(12)).toBe(false);
    free.give(12);
    expect(free.toRuns()).toEqual([[11, 14]]);
    free.give(10);
    free.give(20);
    expect(free.toRuns()).toEqual([
      [10, 14],
      [20, 20],
    ]);
    expect(free.take(14)).toBe(true);
    expect(free.take(20)).toBe(true);
    expect(free.toRuns()).toEqual([[10, 13]]);
  });

  it("finds a port among many runs by binary search", () => {
    const runs = Array.from({ length: 1000 }, (_, i) => [i * 10, i * 10 + 4] as const);
    const free = new FreePorts(runs);
    expect(free.has(5004)).toBe(true);
    expect(free.has(5005)).toBe(false);
    expect(free.has(9994)).toBe(true);
    expect(free.has(-1)).toBe(false);
  });
});
