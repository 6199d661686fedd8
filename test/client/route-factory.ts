import type { Route } from "../../src/client/index.js";

let sequence = 0;

/** A valid route as the coordinator would send it; ids sort in creation order. */
export function makeRoute(overrides: Partial<Route> = {}): Route {
  sequence += 1;
  const port = 10200 + (sequence % 100);
  return {
    id: `00000000-0000-4000-8000-${String(sequence).padStart(12, "0")}`,
    version: sequence,
    protocol: "http",
    mode: "interactive",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
    port,
    subdomain: null,
    url: `http://w1.example.com:${port}/`,
    app: "jupyter",
    session_id: `sess-${sequence}`,
    labels: {},
    ...overrides,
  };
}
