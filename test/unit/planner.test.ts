import { describe, expect, it } from "vitest";
import { FreePorts, type PortRun } from "../../src/placement/free-ports.js";
import type { Candidate } from "../../src/placement/placement.js";
import {
  isRefusal,
  Planner,
  type Booking,
  type NewRoute,
  type PlacedRoute,
  type Refusal,
} from "../../src/placement/planner.js";

type Overrides = Partial<Omit<Candidate, "free">> & { free?: PortRun[] };

function portWorker(name: string, o: Overrides = {}): Candidate {
  const { free, ...rest } = o;
  return {
    id: name,
    name,
    status: "alive",
    frontend_mode: "port",
    port_lo: 10200,
    port_hi: 10209,
    wildcard_domain: null,
    protocols: ["http", "tcp"],
    modes: ["interactive", "inference"],
    labels: {},
    dedicated: false,
    capacity: null,
    route_count: 0,
    ...rest,
    free: new FreePorts(free ?? [[rest.port_lo ?? 10200, rest.port_hi ?? 10209]]),
  };
}

function wildcardWorker(name: string, domain: string, o: Overrides = {}): Candidate {
  return portWorker(name, {
    frontend_mode: "wildcard",
    port_lo: null,
    port_hi: null,
    wildcard_domain: domain,
    free: [],
    ...o,
  });
}

const route = (o: Partial<NewRoute> = {}): NewRoute => ({
  app: "jupyter",
  protocol: "http",
  mode: "interactive",
  worker_selector: {},
  ...o,
});

const placed = (o: Partial<PlacedRoute> = {}): PlacedRoute => ({
  app: "jupyter",
  protocol: "http",
  mode: "interactive",
  worker_selector: {},
  port: null,
  subdomain: null,
  wildcard_domain: null,
  ...o,
});

/** Subdomains made in order: s1, s2, … (the planner's own are random). */
function planner(workers: Candidate[], takenSubdomains: string[] = []) {
  let n = 0;
  return new Planner({ workers, takenSubdomains }, () => `s${++n}`);
}

function booked(r: Booking<Candidate> | Refusal): {
  worker: string;
  port: number | null;
  subdomain: string | null;
} {
  if (isRefusal(r)) throw new Error(`refused: ${r.refused} ${r.detail}`);
  return { worker: r.worker.id, port: r.port, subdomain: r.subdomain };
}

function refused(r: Booking<Candidate> | Refusal): Refusal {
  if (!isRefusal(r)) throw new Error(`placed on ${r.worker.id}`);
  return r;
}

describe("the API's can-take rules", () => {
  it("places only on eligible workers: registered or alive, not lost or draining", () => {
    for (const status of ["lost", "draining"] as const) {
      const p = planner([portWorker("a", { status })]);
      expect(refused(p.place(route())).refused).toBe("nowhere");
      const pinned = refused(p.place(route({ worker_id: "a" })));
      expect(pinned).toMatchObject({ refused: "cannot_serve", field: "worker_id" });
      expect(pinned.detail).toContain(status);
    }
    expect(booked(planner([portWorker("a", { status: "registered" })]).place(route())).worker).toBe(
      "a",
    );
  });

  it("needs the route's protocol and mode", () => {
    const p = planner([
      portWorker("http-only", { protocols: ["http"] }),
      portWorker("inference-only", { modes: ["inference"] }),
    ]);
    expect(booked(p.place(route({ protocol: "tcp", mode: "inference" }))).worker).toBe(
      "inference-only",
    );
    expect(refused(p.place(route({ protocol: "tcp" }))).refused).toBe("nowhere");
    expect(booked(p.place(route({ mode: "interactive" }))).worker).toBe("http-only");
    expect(refused(p.place(route({ protocol: "grpc" }))).refused).toBe("nowhere");
  });

  it("needs every label of the worker_selector", () => {
    const p = planner([
      portWorker("a", { labels: { gpu: "h100" } }),
      portWorker("b", { labels: { gpu: "h100", zone: "x" }, route_count: 5 }),
    ]);
    expect(booked(p.place(route({ worker_selector: { gpu: "h100", zone: "x" } }))).worker).toBe(
      "b",
    );
    expect(refused(p.place(route({ worker_selector: { gpu: "a100" } }))).refused).toBe("nowhere");
  });

  it("gives a dedicated worker only routes with a selector it matches", () => {
    const p = planner([portWorker("d", { dedicated: true, labels: { team: "a" } })]);
    expect(refused(p.place(route())).refused).toBe("nowhere");
    expect(booked(p.place(route({ worker_selector: { team: "a" } }))).worker).toBe("d");
    expect(refused(p.place(route({ worker_selector: { team: "b" } }))).refused).toBe("nowhere");
  });

  it("needs room: below capacity, and a free port in port mode", () => {
    const p = planner([
      portWorker("full", { capacity: 3, route_count: 3 }),
      portWorker("portless", { free: [] }),
      portWorker("roomy", { route_count: 9 }),
    ]);
    expect(booked(p.place(route())).worker).toBe("roomy");
    expect(refused(p.place(route({ worker_id: "full" })))).toMatchObject({
      refused: "full",
      detail: expect.stringContaining("capacity of 3") as string,
    });
    expect(refused(p.place(route({ worker_id: "portless" }))).refused).toBe("full");
  });

  it("counts capacity as routes are placed in the same plan", () => {
    const p = planner([portWorker("a", { capacity: 2 })]);
    booked(p.place(route()));
    booked(p.place(route()));
    expect(refused(p.place(route())).refused).toBe("nowhere");
  });
});

describe("choice of worker", () => {
  it("picks the least loaded worker, ties by name, counting its own placements", () => {
    const p = planner([portWorker("b", { route_count: 1 }), portWorker("a", { route_count: 2 })]);
    expect(
      [p.place(route()), p.place(route()), p.place(route())].map((r) => booked(r).worker),
    ).toEqual(["b", "a", "b"]);
  });

  it("refuses a pinned worker that is unknown", () => {
    expect(refused(planner([]).place(route({ worker_id: "nope" })))).toMatchObject({
      refused: "unknown_worker",
      field: "worker_id",
    });
  });
});

describe("ports", () => {
  it("allocates the lowest free port, skipping taken ones", () => {
    const p = planner([
      portWorker("a", {
        free: [
          [10201, 10201],
          [10204, 10209],
        ],
      }),
    ]);
    expect(
      [p.place(route()), p.place(route()), p.place(route())].map((r) => booked(r).port),
    ).toEqual([10201, 10204, 10205]);
  });

  it("gives an asked port, and 409 when it is taken", () => {
    const p = planner([portWorker("a", { free: [[10200, 10209]] })]);
    expect(booked(p.place(route({ worker_id: "a", port: 10205 }))).port).toBe(10205);
    expect(refused(p.place(route({ worker_id: "a", port: 10205 })))).toMatchObject({
      refused: "port_taken",
      field: "port",
    });
    // The lowest free port is not the one just asked for.
    expect(booked(p.place(route())).port).toBe(10200);
  });

  it("refuses a pinned port outside the worker's range, or on a wildcard worker (422)", () => {
    const p = planner([portWorker("a"), wildcardWorker("w", "apps.test")]);
    expect(refused(p.place(route({ worker_id: "a", port: 10300 })))).toMatchObject({
      refused: "outside_range",
      field: "port",
    });
    expect(refused(p.place(route({ worker_id: "w", port: 10200 }))).detail).toMatch(
      /subdomains, not ports/,
    );
    expect(refused(p.place(route({ worker_id: "a", subdomain: "x" })))).toMatchObject({
      refused: "no_subdomains",
      field: "subdomain",
    });
  });

  it("places an asked port on a worker that has it free; 409 when every one in range holds it", () => {
    const p = planner([
      portWorker("a", { free: [[10200, 10204]] }),
      portWorker("b", { free: [[10205, 10209]], route_count: 7 }),
      portWorker("far", { port_lo: 20000, port_hi: 20009 }),
    ]);
    expect(booked(p.place(route({ port: 10206 })))).toMatchObject({ worker: "b", port: 10206 });
    expect(refused(p.place(route({ port: 10206 })))).toMatchObject({ refused: "port_taken" });
    // A port in no worker's range: nowhere to go.
    expect(refused(p.place(route({ port: 30000 }))).refused).toBe("nowhere");
  });
});

describe("subdomains", () => {
  it("makes a fresh subdomain, or gives the asked one where its domain has it free", () => {
    const p = planner(
      [wildcardWorker("x", "x.test"), wildcardWorker("y", "y.test", { route_count: 4 })],
      ["x.test/taken"],
    );
    expect(booked(p.place(route()))).toEqual({ worker: "x", port: null, subdomain: "s1" });
    // Taken on x.test: goes to y.test although y is busier.
    expect(booked(p.place(route({ subdomain: "taken" })))).toMatchObject({ worker: "y" });
    // Now taken on both domains.
    expect(refused(p.place(route({ subdomain: "taken" })))).toMatchObject({
      refused: "subdomain_taken",
      field: "subdomain",
    });
  });

  it("refuses a subdomain pinned on a worker whose domain holds it", () => {
    const p = planner([wildcardWorker("x", "x.test")], ["x.test/app"]);
    expect(refused(p.place(route({ worker_id: "x", subdomain: "app" }))).refused).toBe(
      "subdomain_taken",
    );
    booked(p.place(route({ worker_id: "x", subdomain: "other" })));
    expect(refused(p.place(route({ worker_id: "x", subdomain: "other" }))).refused).toBe(
      "subdomain_taken",
    );
  });
});

describe("undo", () => {
  it("takes back bookings since a mark: counts, ports and subdomains", () => {
    const p = planner([portWorker("a", { capacity: 1 }), wildcardWorker("w", "w.test")]);
    const mark = p.mark();
    expect(booked(p.place(route({ worker_id: "a" }))).port).toBe(10200);
    booked(p.place(route({ worker_id: "w", subdomain: "app" })));
    p.undoTo(mark);
    expect(p.worker("a")!.route_count).toBe(0);
    expect(booked(p.place(route({ worker_id: "a" }))).port).toBe(10200);
    booked(p.place(route({ worker_id: "w", subdomain: "app" })));
  });
});

describe("moves", () => {
  it("keeps ports where another worker has them free, the rest take its lowest free ones", () => {
    // As a drain: a's routes on 10200, 10201, 10202; b holds 10201 already.
    const p = planner([
      portWorker("a", { status: "draining", free: [[10203, 10209]], route_count: 3 }),
      portWorker("b", {
        free: [
          [10200, 10200],
          [10202, 10209],
        ],
        route_count: 1,
      }),
    ]);
    const routes = [10201, 10200, 10202].map((port) => placed({ port }));
    expect(p.moveAll(routes, "a").map((b) => [b?.worker.id, b?.port])).toEqual([
      ["b", 10203],
      ["b", 10200],
      ["b", 10202],
    ]);
  });

  it("prefers a worker that keeps the port over a less loaded one that cannot", () => {
    const p = planner([
      portWorker("idle", { free: [[10201, 10209]] }),
      portWorker("busy", { route_count: 50 }),
    ]);
    const [kept, fresh] = p.moveAll([placed({ port: 10200 }), placed({ port: 10200 })], "gone");
    expect([kept!.worker.id, kept!.port]).toEqual(["busy", 10200]);
    expect([fresh!.worker.id, fresh!.port]).toEqual(["idle", 10201]);
  });

  it("keeps a subdomain on the same domain, or on a domain where it is free", () => {
    const p = planner(
      [wildcardWorker("same", "a.test"), wildcardWorker("other", "b.test")],
      ["a.test/app", "b.test/kept"],
    );
    const moves = p.moveAll(
      [
        placed({ subdomain: "app", wildcard_domain: "a.test" }),
        placed({ subdomain: "kept", wildcard_domain: "a.test", worker_selector: {} }),
      ],
      "gone",
    );
    expect(moves.map((m) => [m?.worker.id, m?.subdomain])).toEqual([
      ["other", "app"],
      ["same", "kept"],
    ]);
  });

  it("gives a fresh subdomain where the new domain holds it, and leaves stranded routes", () => {
    const p = planner([wildcardWorker("other", "b.test")], ["b.test/app"]);
    const [fresh, stranded] = p.moveAll(
      [
        placed({ subdomain: "app", wildcard_domain: "a.test" }),
        placed({ subdomain: "tcp", wildcard_domain: "a.test", protocol: "grpc" }),
      ],
      "gone",
    );
    expect([fresh?.worker.id, fresh?.subdomain]).toEqual(["other", "s1"]);
    expect(stranded).toBeUndefined();
  });

  it("never moves a route back onto the worker it leaves", () => {
    const p = planner([portWorker("a")]);
    expect(p.moveAll([placed({ port: 10200 })], "a")).toEqual([undefined]);
  });
});

describe("ports asked in the same plan", () => {
  it("are left to the routes asking for them by routes taking the lowest free port", () => {
    const p = new Planner(
      { workers: [portWorker("a")], takenSubdomains: [], askedPorts: [10200, 10202] },
      () => "unused",
    );
    expect(booked(p.place(route())).port).toBe(10201);
    expect(booked(p.place(route())).port).toBe(10203);
    expect(booked(p.place(route({ port: 10200 }))).port).toBe(10200);
    expect(booked(p.place(route({ port: 10202 }))).port).toBe(10202);
  });

  it("are taken all the same when no other port is free", () => {
    const p = new Planner(
      {
        workers: [portWorker("a", { free: [[10200, 10200]] })],
        takenSubdomains: [],
        askedPorts: [10200],
      },
      () => "unused",
    );
    expect(booked(p.place(route())).port).toBe(10200);
  });
});

describe("a snapshot of the least loaded workers only (loadHorizon)", () => {
  /** The snapshot of a read that stopped after `read`: every worker left out comes after them. */
  const partial = (read: Candidate[], pinned: Candidate[] = []) => {
    const last = read[read.length - 1]!;
    let n = 0;
    return new Planner(
      {
        workers: [...pinned, ...read],
        takenSubdomains: [],
        loadHorizon: { route_count: last.route_count, name: last.name },
      },
      () => `s${++n}`,
    );
  };
  const unsure = (r: Booking<Candidate> | Refusal) => isRefusal(r) && r.refused === "unsure";

  it("places on a worker read while it is not past the last one read", () => {
    const p = partial([portWorker("a", { route_count: 1 }), portWorker("b", { route_count: 2 })]);
    expect(booked(p.place(route())).worker).toBe("a");
    // a now holds 2 routes, as b: its name still puts it first.
    expect(booked(p.place(route())).worker).toBe("a");
    // a (3) and b (3) are both past b as read (2): a worker left out may hold 2.
    expect(booked(p.place(route())).worker).toBe("b");
    expect(unsure(p.place(route()))).toBe(true);
  });

  it("is unsure, not refusing, where the workers read cannot take the route", () => {
    const p = partial([
      portWorker("a", { labels: { gpu: "no" }, free: [[10201, 10209]] }),
      portWorker("b", { free: [[10205, 10205]] }),
    ]);
    expect(unsure(p.place(route({ worker_selector: { gpu: "yes" } })))).toBe(true);
    expect(unsure(p.place(route({ port: 10200 })))).toBe(true);
    const wildcard = partial([wildcardWorker("c", "apps.test")]);
    wildcard.place(route({ subdomain: "taken" }));
    expect(unsure(wildcard.place(route({ subdomain: "taken" })))).toBe(true);
  });

  it("books a pinned worker past the horizon, and is unsure of it for a route placed anywhere", () => {
    const p = partial([portWorker("a", { route_count: 1 })], [portWorker("z", { route_count: 5 })]);
    expect(booked(p.place(route())).worker).toBe("a");
    expect(booked(p.place(route({ worker_id: "z" }))).worker).toBe("z");
    // a (2) and z (6) are both past a as read (1).
    expect(unsure(p.place(route()))).toBe(true);
  });

  it("refuses to plan moves: they need every candidate", () => {
    const p = partial([portWorker("a")]);
    expect(() => p.moveAll([placed({ port: 10200 })], "x")).toThrow(/every candidate/);
  });
});
