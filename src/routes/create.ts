import { randomUUID } from "node:crypto";
import {
  conflict,
  unavailable,
  unprocessable,
  type AppError,
  type FieldProblem,
} from "../errors.js";
import {
  hasRoom,
  leastLoaded,
  occupy,
  portInRange,
  servingRejection,
} from "../placement/placement.js";
import { freshSubdomain } from "../placement/subdomain.js";
import type { ChangeContext } from "../versioning/change.js";
import { adjustRouteCounts, loadCandidates, type CandidateRow } from "../workers/repository.js";
import { presentRoute, type RouteRow, type RouteView } from "./model.js";
import { requestHash } from "./hash.js";
import {
  findRoutesByIds,
  freePortsAmong,
  insertRoutes,
  takeLowestPorts,
  takePort,
  takenSubdomains,
} from "./repository.js";
import type { RouteInput } from "./schema.js";

export interface CreateOutcome {
  items: RouteView[];
  /** False when every route already existed with the same body (an idempotent retry). */
  created: boolean;
}

interface Placed {
  index: number;
  input: RouteInput;
  id: string;
  worker: CandidateRow;
  port: number | null;
  subdomain: string | null;
  /** A port still to be allocated (the lowest free one) at the end. */
  needsPort: boolean;
}

const at = (index: number, batch: boolean, field: string) =>
  batch ? `routes.${index}.${field}` : field;

function fail(
  make: (detail: string, errors?: FieldProblem[]) => AppError,
  detail: string,
  path: string,
) {
  return make(detail, [{ path, message: detail }]);
}

/**
 * Creates routes inside a change: places each on a worker, books its port or subdomain and
 * records it for the stream. All or nothing: any failure throws and the change rolls back.
 */
export async function createRoutes(
  ctx: ChangeContext,
  inputs: RouteInput[],
  batch: boolean,
): Promise<CreateOutcome> {
  const { tx } = ctx;
  const hashes = inputs.map((input) => requestHash(input));
  const askedIds = inputs.flatMap((i) => (i.id ? [i.id] : []));
  const existing = new Map((await findRoutesByIds(tx, askedIds)).map((r) => [r.id, r]));
  const items: Array<RouteView | undefined> = inputs.map(() => undefined);
  const fresh: Array<{ index: number; input: RouteInput }> = [];
  inputs.forEach((input, index) => {
    const stored = input.id ? existing.get(input.id) : undefined;
    if (!stored) return fresh.push({ index, input });
    if (stored.request_hash !== hashes[index]) {
      throw conflict(`Route ${input.id} already exists with a different body.`);
    }
    items[index] = presentRoute(stored, stored.w);
  });
  if (fresh.length === 0) return { items: items as RouteView[], created: false };

  const pinnedIds = [
    ...new Set(fresh.flatMap((f) => (f.input.worker_id ? [f.input.worker_id] : []))),
  ];
  const pinned = new Map(
    (await loadCandidates(tx, inputs.length, pinnedIds)).map((c) => [c.id, c]),
  );
  const needPool = fresh.some((f) => !f.input.worker_id);
  const pool = needPool ? await loadCandidates(tx, inputs.length) : [];

  const placed: Placed[] = [];
  const batchSubdomains = new Set<string>();
  for (const { index, input } of fresh) {
    const target = input.worker_id
      ? placePinned(index, input, pinned, batch)
      : await placeAnywhere(ctx, index, input, pool, batch);
    const worker = target.worker;
    let port: number | null = null;
    let subdomain: string | null = null;
    let needsPort = false;
    if (worker.frontend_mode === "port") {
      if (input.port !== undefined) {
        if (!(await takePort(tx, worker.id, input.port))) {
          throw fail(
            conflict,
            `Port ${input.port} is already taken on worker ${worker.name}.`,
            at(index, batch, "port"),
          );
        }
        port = input.port;
      } else needsPort = true;
    } else {
      subdomain = input.subdomain ?? freshSubdomain(input.app);
      const key = `${worker.wildcard_domain}/${subdomain}`;
      const taken =
        batchSubdomains.has(key) ||
        (await takenSubdomains(tx, [worker.wildcard_domain!], [subdomain])).size > 0;
      if (taken) {
        throw fail(
          conflict,
          `Subdomain ${subdomain} is already taken on ${worker.wildcard_domain}.`,
          at(index, batch, "subdomain"),
        );
      }
      batchSubdomains.add(key);
    }
    occupy(worker, worker.frontend_mode === "port");
    placed.push({ index, input, id: input.id ?? randomUUID(), worker, port, subdomain, needsPort });
  }

  await allocatePorts(ctx, placed);

  const counts = new Map<string, number>();
  const rows: RouteRow[] = placed.map((p) => {
    counts.set(p.worker.id, (counts.get(p.worker.id) ?? 0) + 1);
    return {
      id: p.id,
      session_id: p.input.session_id,
      kernel_id: p.input.kernel_id ?? null,
      endpoint_id: p.input.endpoint_id ?? null,
      app: p.input.app,
      protocol: p.input.protocol,
      mode: p.input.mode,
      upstreams: p.input.upstreams,
      health_check: p.input.health_check,
      worker_selector: p.input.worker_selector,
      worker_id: p.worker.id,
      port: p.port,
      subdomain: p.subdomain,
      wildcard_domain: p.subdomain ? p.worker.wildcard_domain : null,
      open_to_public: p.input.open_to_public,
      allowed_client_ips: p.input.allowed_client_ips,
      user_id: p.input.user_id ?? null,
      project_id: p.input.project_id ?? null,
      labels: p.input.labels,
      expires_at: p.input.expires_at,
      last_activity_at: null,
      version: ctx.version,
      request_hash: hashes[p.index]!,
      created_at: ctx.now,
      updated_at: ctx.now,
    };
  });
  await insertRoutes(tx, rows);
  await adjustRouteCounts(tx, counts);
  rows.forEach((row, i) => {
    const view = presentRoute(row, placed[i]!.worker);
    items[placed[i]!.index] = view;
    ctx.record({ workerId: row.worker_id, routeId: row.id, op: "upsert", route: view });
  });
  return { items: items as RouteView[], created: true };
}

function placePinned(
  index: number,
  input: RouteInput,
  pinned: Map<string, CandidateRow>,
  batch: boolean,
): { worker: CandidateRow } {
  const path = at(index, batch, "worker_id");
  const worker = pinned.get(input.worker_id!);
  if (!worker) throw fail(unprocessable, `Worker ${input.worker_id} is unknown.`, path);
  const rejection = servingRejection(worker, input);
  if (rejection) throw fail(unprocessable, `Worker cannot take the route: ${rejection}.`, path);
  checkAddressFits(worker, input, index, batch);
  if (worker.capacity !== null && worker.route_count >= worker.capacity) {
    throw unavailable(`Worker ${worker.name} is at its capacity of ${worker.capacity} routes.`);
  }
  if (worker.frontend_mode === "port" && input.port === undefined && worker.free_ports <= 0) {
    throw unavailable(`Worker ${worker.name} has no free port left.`);
  }
  return { worker };
}

function checkAddressFits(worker: CandidateRow, input: RouteInput, index: number, batch: boolean) {
  if (input.port !== undefined && !portInRange(worker, input.port)) {
    const why =
      worker.frontend_mode === "port"
        ? `Port ${input.port} lies outside the range ${worker.port_lo}-${worker.port_hi} of worker ${worker.name}.`
        : `Worker ${worker.name} serves subdomains, not ports.`;
    throw fail(unprocessable, why, at(index, batch, "port"));
  }
  if (input.subdomain !== undefined && worker.frontend_mode !== "wildcard") {
    throw fail(
      unprocessable,
      `Worker ${worker.name} serves ports, not subdomains.`,
      at(index, batch, "subdomain"),
    );
  }
}

async function placeAnywhere(
  ctx: ChangeContext,
  index: number,
  input: RouteInput,
  pool: CandidateRow[],
  batch: boolean,
): Promise<{ worker: CandidateRow }> {
  const able = pool.filter((c) => servingRejection(c, input) === undefined && hasRoom(c));
  let fits = able;
  if (input.port !== undefined) {
    const inRange = able.filter((c) => portInRange(c, input.port!));
    const free = await freePortsAmong(
      ctx.tx,
      inRange.map((c) => c.id),
      [input.port],
    );
    fits = inRange.filter((c) => free.has(`${c.id}:${input.port}`));
    if (fits.length === 0 && inRange.length > 0) {
      throw fail(
        conflict,
        `Port ${input.port} is taken on every worker that could serve the route.`,
        at(index, batch, "port"),
      );
    }
  } else if (input.subdomain !== undefined) {
    const wildcard = able.filter((c) => c.frontend_mode === "wildcard");
    const taken = await takenSubdomains(
      ctx.tx,
      wildcard.map((c) => c.wildcard_domain!),
      [input.subdomain],
    );
    fits = wildcard.filter((c) => !taken.has(`${c.wildcard_domain}/${input.subdomain}`));
    if (fits.length === 0 && wildcard.length > 0) {
      throw fail(
        conflict,
        `Subdomain ${input.subdomain} is taken on every domain that could serve the route.`,
        at(index, batch, "subdomain"),
      );
    }
  }
  const worker = leastLoaded(fits, () => true);
  if (!worker) {
    throw unavailable(
      `No worker can take the route${batch ? ` at routes.${index}` : ""} (${input.protocol}, ${input.mode}${
        Object.keys(input.worker_selector).length > 0 ? ", with its worker_selector" : ""
      }).`,
    );
  }
  return { worker };
}

/** Gives each route that needs one the lowest free port of its worker, one query per worker. */
async function allocatePorts(ctx: ChangeContext, placed: Placed[]): Promise<void> {
  const byWorker = new Map<string, Placed[]>();
  for (const p of placed) {
    if (!p.needsPort) continue;
    const list = byWorker.get(p.worker.id) ?? [];
    list.push(p);
    byWorker.set(p.worker.id, list);
  }
  for (const [workerId, list] of byWorker) {
    const ports = await takeLowestPorts(ctx.tx, workerId, list.length);
    if (ports.length < list.length) {
      throw unavailable(`Worker ${list[0]!.worker.name} has no free port left.`);
    }
    list.forEach((p, i) => (p.port = ports[i]!));
  }
}
