import type { Knex } from "knex";
import { validate } from "../src/http/validate.js";
import type { RouteView } from "../src/routes/model.js";
import { routeCreateSchema, type RouteInput } from "../src/routes/schema.js";
import { RouteService } from "../src/routes/service.js";
import type { Committer } from "../src/versioning/committer.js";
import type { WorkerView } from "../src/workers/model.js";
import { findWorkerByName } from "../src/workers/repository.js";
import { registerSchema, type Registration } from "../src/workers/schema.js";
import { WorkerService } from "../src/workers/service.js";

/**
 * A small demo fleet: one port-mode worker, one wildcard worker and three routes on them. The
 * routes select the workers by label, so they land on these two and nowhere else whatever else
 * the database holds. Bodies are written as a Manager would send them over HTTP and go through
 * the same joi schemas, so defaults and retry hashes are exactly those of the API.
 */
export const DEMO_WORKERS = [
  {
    name: "demo-port-1",
    advertised_host: "127.0.0.1",
    frontend_mode: "port",
    port_range: [10300, 10399],
    protocols: ["http", "tcp"],
    labels: { fleet: "demo", frontend: "port" },
  },
  {
    name: "demo-wildcard-1",
    advertised_host: "127.0.0.1",
    frontend_mode: "wildcard",
    wildcard_domain: "apps.demo.localhost",
    protocols: ["http", "h2"],
    labels: { fleet: "demo", frontend: "wildcard" },
  },
] as const;

/** Fixed ids make the seed idempotent: a second run is a retry that answers the stored routes. */
export const DEMO_ROUTES = [
  {
    id: "5eed0000-0000-4000-8000-000000000001",
    session_id: "demo-session-1",
    kernel_id: "demo-kernel-1",
    app: "jupyter",
    protocol: "http",
    mode: "interactive",
    upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
    worker_selector: { fleet: "demo", frontend: "port" },
    allowed_client_ips: ["10.0.0.0/8"],
    user_id: "demo-user",
    project_id: "demo-project",
  },
  {
    id: "5eed0000-0000-4000-8000-000000000002",
    session_id: "demo-session-1",
    kernel_id: "demo-kernel-1",
    app: "ssh",
    protocol: "tcp",
    mode: "interactive",
    upstreams: [{ host: "10.0.0.5", port: 22, weight: 1 }],
    worker_selector: { fleet: "demo", frontend: "port" },
    allowed_client_ips: ["10.0.0.0/8"],
    user_id: "demo-user",
    project_id: "demo-project",
  },
  {
    id: "5eed0000-0000-4000-8000-000000000003",
    session_id: "demo-inference-1",
    endpoint_id: "demo-endpoint-1",
    app: "vllm",
    protocol: "http",
    mode: "inference",
    subdomain: "llama-demo",
    upstreams: [
      { host: "10.0.1.11", port: 8000, weight: 1 },
      { host: "10.0.1.12", port: 8000, weight: 1 },
    ],
    health_check: { path: "/health", interval_s: 10, max_wait_s: 60 },
    worker_selector: { fleet: "demo", frontend: "wildcard" },
    open_to_public: true,
    project_id: "demo-project",
    labels: { model: "llama-3-8b" },
  },
] as const;

export interface SeededWorker {
  worker: WorkerView;
  created: boolean;
}

export interface DemoFleet {
  workers: SeededWorker[];
  routes: RouteView[];
  /** True when this run created the routes; false when they were all there already. */
  routesCreated: boolean;
  /** The routing version after the seed. */
  version: number;
}

/**
 * Registers the demo workers (by name, so a second run finds them) and creates the demo routes
 * in one batch, through the services and the committer like any API request.
 */
export async function loadDemoFleet(knex: Knex, committer: Committer): Promise<DemoFleet> {
  const workerService = new WorkerService(knex, committer);
  const routeService = new RouteService(knex, committer);

  const workers: SeededWorker[] = [];
  for (const body of DEMO_WORKERS) {
    const registration = validate<Registration>(registerSchema.required(), body);
    // The seed speaks for the operator, who owns the database: it may register its names again.
    const known = await findWorkerByName(knex, registration.name);
    const registered = await workerService.register(registration, known?.id);
    workers.push({ worker: registered.worker, created: registered.created });
  }

  const inputs = DEMO_ROUTES.map((body, i) =>
    validate<RouteInput>(routeCreateSchema.required(), body, `routes.${i}`),
  );
  const committed = await routeService.create(inputs, true);
  return {
    workers,
    routes: committed.result.items,
    routesCreated: committed.result.created,
    version: committed.version,
  };
}
