import { describe, expect, it } from "vitest";
import {
  canTake,
  hasRoom,
  leastLoaded,
  portInRange,
  servingRejection,
  type Candidate,
  type Demand,
} from "../../src/placement/placement.js";
import { freshSubdomain } from "../../src/placement/subdomain.js";
import { FreePorts } from "../../src/placement/free-ports.js";

function worker(overrides: Partial<Candidate> = {}): Candidate {
  return {
    id: "w",
    name: "w",
    frontend_mode: "port",
    port_lo: 10200,
    port_hi: 10299,
    wildcard_domain: null,
    protocols: ["http"],
    modes: ["interactive", "inference"],
    labels: {},
    dedicated: false,
    capacity: null,
    route_count: 0,
    status: "alive",
    free: new FreePorts([[10200, 10299]]),
    ...overrides,
  };
}

const demand: Demand = { protocol: "http", mode: "interactive", worker_selector: {} };

describe("servingRejection", () => {
  it("accepts an eligible worker that serves the protocol and mode", () => {
    expect(servingRejection(worker(), demand)).toBeUndefined();
    expect(servingRejection(worker({ status: "registered" }), demand)).toBeUndefined();
  });

  it.each([
    [{ status: "lost" as const }, /lost/],
    [{ status: "draining" as const }, /draining/],
    [{ protocols: ["tcp" as const] }, /protocol http/],
    [{ modes: ["inference" as const] }, /mode interactive/],
  ])("refuses %o", (overrides, reason) => {
    expect(servingRejection(worker(overrides), demand)).toMatch(reason);
  });

  it("requires every label of the selector", () => {
    const d = { ...demand, worker_selector: { gpu: "h100", zone: "a" } };
    expect(servingRejection(worker({ labels: { gpu: "h100" } }), d)).toMatch(/zone=a/);
    expect(
      servingRejection(worker({ labels: { gpu: "h100", zone: "a", x: "y" } }), d),
    ).toBeUndefined();
  });

  it("lets a dedicated worker take only routes with a selector it matches", () => {
    const dedicated = worker({ dedicated: true, labels: { team: "a" } });
    expect(servingRejection(dedicated, demand)).toMatch(/dedicated/);
    expect(
      servingRejection(dedicated, { ...demand, worker_selector: { team: "a" } }),
    ).toBeUndefined();
    expect(servingRejection(dedicated, { ...demand, worker_selector: { team: "b" } })).toMatch(
      /team=b/,
    );
  });
});

describe("room and choice", () => {
  it("counts capacity and free ports; wildcard workers need no ports", () => {
    expect(hasRoom(worker({ capacity: 2, route_count: 2 }))).toBe(false);
    expect(hasRoom(worker({ free: new FreePorts([]) }))).toBe(false);
    expect(hasRoom(worker({ frontend_mode: "wildcard", free: new FreePorts([]) }))).toBe(true);
    expect(hasRoom(worker({ frontend_mode: "wildcard", capacity: 0 }))).toBe(false);
  });

  it("picks the least loaded worker that can take the route, ties by name", () => {
    const a = worker({ id: "a", name: "a", route_count: 3 });
    const b = worker({ id: "b", name: "b", route_count: 1 });
    const c = worker({ id: "c", name: "c", route_count: 1 });
    const full = worker({ id: "d", name: "d", route_count: 0, free: new FreePorts([]) });
    expect(leastLoaded([a, b, c, full], (w) => canTake(w, demand))?.id).toBe("b");
    b.route_count += 1;
    expect(leastLoaded([a, b, c, full], (w) => canTake(w, demand))?.id).toBe("c");
    expect(leastLoaded([full], (w) => canTake(w, demand))).toBeUndefined();
  });

  it("knows a port-mode worker's range", () => {
    expect(portInRange(worker(), 10200)).toBe(true);
    expect(portInRange(worker(), 10300)).toBe(false);
    expect(
      portInRange(worker({ frontend_mode: "wildcard", port_lo: null, port_hi: null }), 10200),
    ).toBe(false);
  });
});

describe("freshSubdomain", () => {
  it("makes distinct DNS labels from any app name", () => {
    const seen = new Set<string>();
    for (const app of ["jupyter", "VS Code!", "-x-", "", "a".repeat(80)]) {
      const s = freshSubdomain(app);
      expect(s).toMatch(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
      seen.add(s);
    }
    expect(seen.size).toBe(5);
  });
});
