import type { Knex } from "knex";
import type { AccessTokenIssuer } from "../access/issuer.js";
import { validate } from "../http/validate.js";
import { presentRoute, type RouteView, type Upstream } from "../routes/model.js";
import { findRoute, type RouteWithWorker } from "../routes/repository.js";
import { routeCreateSchema, type RouteInput } from "../routes/schema.js";
import { deleteRouteRows, type RouteService } from "../routes/service.js";
import type { HealthCheck } from "../client/route.js";
import type { Committed } from "../versioning/change.js";
import type { Committer } from "../versioning/committer.js";
import { invalidParams, objectNotFound } from "./errors.js";
import { findReplicas, replaceReplicas, type ReplicaRow } from "./repository.js";
import {
  deploymentOf,
  type CreateItem,
  type HealthCheckInput,
  type ReplicaInput,
} from "./schema.js";

/** Their text for a replica call on a deployment that has no endpoint yet (read by the Manager). */
export const NO_CIRCUIT = "No circuit registered for this endpoint yet.";

/**
 * The upstream of an endpoint that has no replica: a route needs one, and weight 0 sends it no
 * traffic. 192.0.2.1 (TEST-NET-1) is reachable nowhere, should a worker ever try.
 */
export const NO_REPLICA_UPSTREAM: Upstream = { host: "192.0.2.1", port: 9, weight: 0 };

/** `traffic_ratio` 1.0 (their default) is weight 100, so ratios down to 0.01 stay distinct. */
const WEIGHT_PER_RATIO = 100;

export interface SyncedEndpoint {
  deployment_id: string;
  url: string;
  health_check_enabled: boolean;
}

export interface ReplicaOutcome {
  deployment_id: string;
  success: boolean;
  error: string | null;
}

export interface RegisterOutcome extends ReplicaOutcome {
  registered_route_ids: string[];
  already_registered_route_ids: string[];
}

export interface UnregisterOutcome extends ReplicaOutcome {
  unregistered_route_ids: string[];
  already_absent_route_ids: string[];
}

const clampSeconds = (s: number) => Math.min(3600, Math.max(1, Math.ceil(s)));

/** Their `ModelHealthCheck` as the worker's probe: path, interval and time-out, whole seconds. */
export function healthCheckOf(input: HealthCheckInput | null): HealthCheck | null {
  if (input === null) return null;
  return {
    path: input.path,
    interval_s: clampSeconds(input.interval),
    max_wait_s: clampSeconds(input.max_wait_time),
  };
}

function upstreamsOf(replicas: ReplicaRow[]): Upstream[] {
  if (replicas.length === 0) return [NO_REPLICA_UPSTREAM];
  return replicas.map((r) => ({ host: r.host, port: r.port, weight: r.weight }));
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Backend.AI's inference endpoints on the coordinator's own model: an endpoint is an inference
 * route whose id is the deployment id, whose upstreams are the Manager's replicas (by their
 * `route_id`, kept in `backendai_replicas`) weighted by `traffic_ratio`. Every call is one
 * committed change, so one routing version, and repeating it changes nothing more.
 */
export class EndpointService {
  constructor(
    private readonly knex: Knex,
    private readonly committer: Committer,
    private readonly routes: RouteService,
    private readonly issuer: AccessTokenIssuer,
  ) {}

  /**
   * Creates the endpoints not known yet (one batch: one version, all or nothing) and brings the
   * health check of known ones up to date; answers in request order. A known endpoint keeps its
   * URL, so a repeated call answers the same.
   */
  async sync(items: CreateItem[]): Promise<{ items: SyncedEndpoint[]; version?: number }> {
    const ids = [...new Set(items.map(deploymentOf))];
    const known = await this.endpointRoutes(this.knex, ids);
    const fresh = new Map<string, RouteInput>();
    const checks = new Map<string, HealthCheck | null>();
    for (const item of items) {
      const id = deploymentOf(item);
      checks.set(id, healthCheckOf(item.health_check));
      if (!known.has(id) && !fresh.has(id)) fresh.set(id, await this.endpointRoute(id, item));
    }
    let version: number | undefined;
    if (fresh.size > 0) {
      const inputs = [...fresh.values()].map((input) => ({
        ...input,
        health_check: checks.get(input.id!) ?? null,
      }));
      version = (await this.routes.create(inputs, true)).version;
    }
    const stale = [...known.values()].filter((r) => !sameJson(r.health_check, checks.get(r.id)));
    if (stale.length > 0) {
      const committed = await this.committer.submit("backendai.health_checks", async (ctx) => {
        for (const route of stale) {
          await this.writeRoute(ctx, route.id, { health_check: checks.get(route.id) ?? null });
        }
      });
      version = committed.version;
    }
    const now = await this.endpointRoutes(this.knex, ids);
    return {
      items: items.map((item) => {
        const route = now.get(deploymentOf(item));
        if (!route) throw objectNotFound("endpoint", `Endpoint ${deploymentOf(item)} vanished.`);
        return {
          deployment_id: deploymentOf(item),
          url: presentRoute(route, route.w).url,
          health_check_enabled: item.health_check !== null,
        };
      }),
      ...(version !== undefined ? { version } : {}),
    };
  }

  /** Replaces each endpoint's replica list; an unknown deployment fails alone. */
  replaceReplicas(
    items: Array<{ deployment: string; routes: ReplicaInput[] }>,
  ): Promise<Committed<ReplicaOutcome[]>> {
    return this.changeReplicas("backendai.routes", items, {}, (_current, item) => ({
      next: item.routes.map((r) => replicaRow(item.deployment, r)),
      outcome: {},
    }));
  }

  /** Adds replicas by `route_id`; those already there are named, not added again. */
  registerReplicas(
    items: Array<{ deployment: string; routes: ReplicaInput[] }>,
  ): Promise<Committed<RegisterOutcome[]>> {
    const none = { registered_route_ids: [], already_registered_route_ids: [] };
    return this.changeReplicas("backendai.register", items, none, (current, item) => {
      const held = new Set(current.map((r) => r.replica_id));
      const added: ReplicaRow[] = [];
      const already: string[] = [];
      for (const r of item.routes) {
        if (held.has(r.route_id)) already.push(r.route_id);
        else {
          held.add(r.route_id);
          added.push(replicaRow(item.deployment, r));
        }
      }
      return {
        next: [...current, ...added],
        outcome: {
          registered_route_ids: added.map((r) => r.replica_id),
          already_registered_route_ids: already,
        },
      };
    });
  }

  /** Drops replicas by `route_id`; those already gone are named. */
  unregisterReplicas(
    items: Array<{ deployment: string; route_ids: string[] }>,
  ): Promise<Committed<UnregisterOutcome[]>> {
    const none = { unregistered_route_ids: [], already_absent_route_ids: [] };
    return this.changeReplicas("backendai.unregister", items, none, (current, item) => {
      const dropped = new Set(item.route_ids);
      const held = new Set(current.map((r) => r.replica_id));
      const unique = [...new Set(item.route_ids)];
      return {
        next: current.filter((r) => !dropped.has(r.replica_id)),
        outcome: {
          unregistered_route_ids: unique.filter((id) => held.has(id)),
          already_absent_route_ids: unique.filter((id) => !held.has(id)),
        },
      };
    });
  }

  /** Removes the endpoints, in one version; an unknown one counts as removed. */
  remove(deployments: string[]): Promise<Committed<void>> {
    return this.committer.submit("backendai.delete", async (ctx) => {
      const rows = [...(await this.endpointRoutes(ctx.tx, [...new Set(deployments)])).values()];
      await deleteRouteRows(ctx.tx, rows);
      for (const r of rows) ctx.record({ workerId: r.worker_id, routeId: r.id, op: "delete" });
    });
  }

  /** Sets one endpoint's health check; 404 where the id has no inference route. */
  setHealthCheck(deployment: string, input: HealthCheckInput | null): Promise<Committed<void>> {
    return this.committer.submit("backendai.health_check", async (ctx) => {
      const route = (await this.endpointRoutes(ctx.tx, [deployment])).get(deployment);
      if (!route) throw objectNotFound("inference-circuit");
      const check = healthCheckOf(input);
      if (!sameJson(route.health_check, check)) {
        await this.writeRoute(ctx, route.id, { health_check: check });
      }
    });
  }

  /**
   * The bearer token for calling the endpoint: the coordinator's Ed25519 access token for its
   * route, valid until `exp` (a time, or unix seconds).
   */
  async token(deployment: string, userUuid: string, exp: Date | number): Promise<string> {
    const route = (await this.endpointRoutes(this.knex, [deployment])).get(deployment);
    if (!route) throw objectNotFound("endpoint");
    const expS = Math.floor(typeof exp === "number" ? exp : exp.getTime() / 1000);
    if (expS <= Math.floor(Date.now() / 1000)) {
      throw invalidParams("Input validation error", [
        { type: "value_error", loc: ["exp"], msg: "must lie in the future" },
      ]);
    }
    return (await this.issuer.issueUntil(route.id, userUuid, expS)).token;
  }

  private async changeReplicas<I extends { deployment: string }, O extends object>(
    kind: string,
    items: I[],
    failed: O,
    decide: (current: ReplicaRow[], item: I) => { next: ReplicaRow[]; outcome: O },
  ): Promise<Committed<Array<ReplicaOutcome & O>>> {
    return this.committer.submit(kind, async (ctx) => {
      const ids = [...new Set(items.map((i) => i.deployment))];
      const routes = await this.endpointRoutes(ctx.tx, ids);
      const held = new Map<string, ReplicaRow[]>();
      for (const r of await findReplicas(ctx.tx, [...routes.keys()])) {
        held.set(r.endpoint_route_id, [...(held.get(r.endpoint_route_id) ?? []), r]);
      }
      const touched = new Set<string>();
      const outcomes = items.map((item): ReplicaOutcome & O => {
        if (!routes.has(item.deployment)) {
          return { deployment_id: item.deployment, success: false, error: NO_CIRCUIT, ...failed };
        }
        const current = held.get(item.deployment) ?? [];
        const { next, outcome } = decide(current, item);
        held.set(
          item.deployment,
          next.map((r, position) => ({ ...r, position })),
        );
        if (!sameJson(current.map(replicaKey), next.map(replicaKey))) touched.add(item.deployment);
        return { deployment_id: item.deployment, success: true, error: null, ...outcome };
      });
      for (const id of touched) {
        const replicas = held.get(id)!;
        await replaceReplicas(ctx.tx, id, replicas);
        const upstreams = upstreamsOf(replicas);
        if (!sameJson(routes.get(id)!.upstreams, upstreams)) {
          await this.writeRoute(ctx, id, { upstreams });
        }
      }
      return outcomes;
    });
  }

  /** Writes the given fields of a route under this change's version and logs the upsert. */
  private async writeRoute(
    ctx: Parameters<Parameters<Committer["submit"]>[1]>[0],
    id: string,
    fields: { upstreams?: Upstream[]; health_check?: HealthCheck | null },
  ): Promise<RouteView> {
    const update: Record<string, unknown> = { version: ctx.version, updated_at: ctx.now };
    for (const [key, value] of Object.entries(fields)) {
      update[key] = value === null ? null : ctx.tx.raw("?::jsonb", [JSON.stringify(value)]);
    }
    await ctx.tx("routes").where({ id }).update(update);
    const route = (await findRoute(ctx.tx, id))!;
    const view = presentRoute(route, route.w);
    ctx.record({ workerId: route.worker_id, routeId: id, op: "upsert", route: view });
    return view;
  }

  /** The inference routes that are these deployments' endpoints, by deployment id. */
  private async endpointRoutes(
    db: Knex | Knex.Transaction,
    deployments: string[],
  ): Promise<Map<string, RouteWithWorker>> {
    const found = new Map<string, RouteWithWorker>();
    for (const id of deployments) {
      const route = await findRoute(db, id);
      if (route && route.mode === "inference") found.set(id, route);
    }
    return found;
  }

  /** The route a new endpoint becomes, back on the worker its `existing_url` names if any. */
  private async endpointRoute(id: string, item: CreateItem): Promise<RouteInput> {
    const session = item.tags.session;
    const pinned = await this.workerOfUrl(item.tags.endpoint.existing_url);
    return validate<RouteInput>(routeCreateSchema, {
      id,
      session_id: id,
      endpoint_id: id,
      app: item.service_name.slice(0, 63),
      protocol: "http",
      mode: "inference",
      upstreams: [NO_REPLICA_UPSTREAM],
      open_to_public: item.open_to_public,
      user_id: session.user_uuid,
      project_id: session.project_id ?? session.group_id ?? null,
      labels: { "backend.ai/runtime-variant": item.tags.endpoint.runtime_variant },
      ...pinned,
    });
  }

  /**
   * The worker, and its port or subdomain, that a URL handed out before names: a wildcard
   * worker serving the URL's domain, or a port worker on its host whose range holds its port.
   */
  private async workerOfUrl(
    url: string | null,
  ): Promise<{ worker_id?: string; port?: number; subdomain?: string }> {
    if (url === null) return {};
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return {};
    }
    const host = parsed.hostname.replace(/^\[|\]$/g, "").toLowerCase();
    const dot = host.indexOf(".");
    if (dot > 0) {
      const wildcard = (await this.knex("workers")
        .where({ frontend_mode: "wildcard", wildcard_domain: host.slice(dot + 1) })
        .first("id")) as { id: string } | undefined;
      if (wildcard) return { worker_id: wildcard.id, subdomain: host.slice(0, dot) };
    }
    const port = Number(parsed.port);
    if (!port) return {};
    const worker = (await this.knex("workers")
      .where({ frontend_mode: "port", advertised_host: host })
      .andWhere("port_lo", "<=", port)
      .andWhere("port_hi", ">=", port)
      .first("id")) as { id: string } | undefined;
    return worker ? { worker_id: worker.id, port } : {};
  }
}

function replicaRow(deployment: string, r: ReplicaInput): ReplicaRow {
  return {
    endpoint_route_id: deployment,
    replica_id: r.route_id,
    session_id: r.session_id,
    host: r.kernel_host,
    port: r.kernel_port,
    weight: Math.min(1000, Math.round(r.traffic_ratio * WEIGHT_PER_RATIO)),
    position: 0,
  };
}

const replicaKey = (r: ReplicaRow) => [r.replica_id, r.session_id, r.host, r.port, r.weight];
