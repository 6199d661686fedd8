import { randomUUID } from "node:crypto";
import {
  conflict,
  unavailable,
  unprocessable,
  type AppError,
  type FieldProblem,
} from "../errors.js";
import { isRefusal, Planner, type Refusal } from "../placement/planner.js";
import {
  candidatesRead,
  candidatesStatement,
  candidateSet,
  leastLoadedSet,
  subdomainKeys,
  takenSubdomainsStatement,
  WorkerTally,
  type CandidateSet,
  type PlacementWorker,
} from "../placement/repository.js";
import type { Statement } from "../db/prepared.js";
import type { Row } from "../db/script.js";
import type { PlanContext, RunResult, Scripted, ScriptedRun } from "../versioning/change.js";
import { requestHash } from "./hash.js";
import { presentRoute, type RouteRow, type RouteView } from "./model.js";
import { insertRoutesStatement, routesByIdsStatement, splitWorker } from "./repository.js";
import type { RouteInput } from "./schema.js";

/** One create request: a single route, or a batch that is created all or nothing. */
export interface CreateRequest {
  inputs: RouteInput[];
  batch: boolean;
}

export interface CreateOutcome {
  items: RouteView[];
  /** False when every route already existed with the same body (an idempotent retry). */
  created: boolean;
}

/** A route of a request, placed: its worker and address, booked in the run's planner. */
interface Placement {
  index: number;
  input: RouteInput;
  id: string;
  hash: string;
  worker: PlacementWorker;
  port: number | null;
  subdomain: string | null;
}

const at = (index: number, batch: boolean, field: string) =>
  batch ? `routes.${index}.${field}` : field;

/** A refusal of the planner as the API answers it (docs/api.md, POST /routes). */
function refusalError(refusal: Refusal, index: number, batch: boolean): AppError {
  const errors: FieldProblem[] | undefined = refusal.field
    ? [{ path: at(index, batch, refusal.field), message: refusal.detail }]
    : undefined;
  switch (refusal.refused) {
    case "unknown_worker":
    case "cannot_serve":
    case "outside_range":
    case "no_subdomains":
      return unprocessable(refusal.detail, errors);
    case "port_taken":
    case "subdomain_taken":
      return conflict(refusal.detail, errors);
    case "full":
    case "unsure": // never left over: CreateRun reads every candidate then
      return unavailable(refusal.detail);
    case "nowhere":
      return unavailable(
        batch
          ? refusal.detail.replace("the route", `the route at routes.${index}`)
          : refusal.detail,
      );
  }
}

/** A create request with each route's request hash, worked out before it waits for the lock. */
interface HashedRequest extends CreateRequest {
  hashes: string[];
}

/** A create request as the committer runs it: scripted with the others waiting with it. */
export function scriptedCreate(request: CreateRequest): Scripted<HashedRequest, CreateOutcome> {
  return {
    key: "routes.create",
    input: { ...request, hashes: request.inputs.map(requestHash) },
    creates: request.inputs.flatMap((i) => (i.id ? [i.id] : [])),
    start: (requests) => new CreateRun(requests),
  };
}

type Planned =
  | { ok: true; outcome: CreateOutcome; placements: Placement[]; version?: number }
  | { ok: false; error: unknown };

/** Which of CreateRun's read statements ran, by their place in the script. */
interface CreateReads {
  existing?: number;
  /** The newest read of candidates, and the set it read. */
  candidates?: number;
  candidateSet: CandidateSet;
  takenSubdomains?: number;
}

/**
 * How many of the least loaded eligible workers a run reads for `routes` routes placed
 * anywhere: room for some to be unable to take them. Should none of those read be the one
 * (see PlacementSnapshot.loadHorizon), the run reads every candidate and places again.
 */
const leastLoadedToRead = (routes: number): number => (routes === 0 ? 0 : 2 * routes + 16);

/** Thrown by a placement that the least loaded workers read cannot decide. */
class SnapshotTooSmall extends Error {}

/**
 * The creates of one run, placed in memory: retries recognised by id and body, every new route
 * booked by the planner, one request after the other so that each sees the bookings before it.
 */
class CreatePlan {
  /** Routes created earlier in this run, by id: a later retry of the same id sees them. */
  private readonly createdHere = new Map<string, { hash: string; placement: Placement }>();

  constructor(
    private readonly existing: Map<string, { hash: string; view: RouteView }>,
    private readonly planner: Planner<PlacementWorker>,
  ) {}

  /** Builds the plan from the rows of CreateRun's reads. */
  static fromRows(reads: CreateReads, rows: Row[][], askedPorts: number[]): CreatePlan {
    const read = (i: number | undefined) => (i === undefined ? [] : rows[i]!);
    const existing = new Map(
      read(reads.existing).map((row) => {
        const r = splitWorker(row);
        return [r.id, { hash: r.request_hash, view: presentRoute(r, r.w) }];
      }),
    );
    const planner = new Planner({
      ...candidatesRead(read(reads.candidates), reads.candidateSet),
      takenSubdomains: subdomainKeys(read(reads.takenSubdomains)),
      askedPorts,
    });
    return new CreatePlan(existing, planner);
  }

  /** Places one request's routes; a failure takes back that request's bookings only. */
  place(request: HashedRequest): Planned {
    const mark = this.planner.mark();
    try {
      return this.placeRequest(request);
    } catch (error) {
      this.planner.undoTo(mark);
      return { ok: false, error };
    }
  }

  private placeRequest({ inputs, batch, hashes }: HashedRequest): Planned {
    const items: Array<RouteView | undefined> = inputs.map(() => undefined);
    const placements: Placement[] = [];
    const fresh: Placement[] = [];
    const seen = new Set<string>();
    inputs.forEach((input, index) => {
      const hash = hashes[index]!;
      if (input.id) {
        if (seen.has(input.id)) {
          throw conflict(`Route ${input.id} appears twice.`, [
            { path: at(index, batch, "id"), message: `Route ${input.id} appears twice.` },
          ]);
        }
        seen.add(input.id);
        const stored = this.existing.get(input.id);
        const here = this.createdHere.get(input.id);
        if (stored || here) {
          if ((stored?.hash ?? here!.hash) !== hash) {
            throw conflict(`Route ${input.id} already exists with a different body.`);
          }
          // Routes made earlier in this run get their view once the rows are written.
          items[index] = stored?.view;
          if (here) placements.push({ ...here.placement, index });
          return;
        }
      }
      const booking = this.planner.place(input);
      if (isRefusal(booking) && booking.refused === "unsure") throw new SnapshotTooSmall();
      if (isRefusal(booking)) throw refusalError(booking, index, batch);
      const placement = { index, input, id: input.id ?? randomUUID(), hash, ...booking };
      placements.push(placement);
      fresh.push(placement);
    });
    for (const p of fresh) this.createdHere.set(p.id, { hash: p.hash, placement: p });
    return {
      ok: true,
      outcome: { items: items as RouteView[], created: fresh.length > 0 },
      placements,
    };
  }

  /**
   * Numbers the requests that create something, in order, each with the next version: the
   * placements to write, with the request each belongs to.
   */
  numberVersions(
    ctx: PlanContext,
    results: Planned[],
  ): Array<{ p: Placement; result: Planned & { ok: true } }> {
    const fresh: Array<{ p: Placement; result: Planned & { ok: true } }> = [];
    const written = new Set<string>();
    for (const result of results) {
      if (!result.ok) continue;
      const mine = result.placements.filter((p) => !written.has(p.id) && !this.existing.has(p.id));
      if (mine.length === 0) continue;
      result.version = ctx.takeVersion();
      for (const p of mine) {
        written.add(p.id);
        fresh.push({ p, result });
      }
    }
    return fresh;
  }
}

/** The row of a new route, and its entry in the change log under its request's version. */
function routeRow(ctx: PlanContext, p: Placement, version: number): RouteRow {
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
    wildcard_domain: p.subdomain !== null ? p.worker.wildcard_domain : null,
    open_to_public: p.input.open_to_public,
    allowed_client_ips: p.input.allowed_client_ips,
    user_id: p.input.user_id ?? null,
    project_id: p.input.project_id ?? null,
    labels: p.input.labels,
    expires_at: p.input.expires_at,
    last_activity_at: null,
    version,
    request_hash: p.hash,
    created_at: ctx.now,
    updated_at: ctx.now,
  };
}

/**
 * The create requests of one group: existing routes, candidates (the pinned workers and the
 * least loaded eligible ones, with their free ports as placement needs them; every eligible
 * worker in a second read when those cannot decide) and taken subdomains read with the lock;
 * placement, ports and versions
 * decided in memory; then the routes inserted and their workers' counts and ports written, one
 * statement each. Each request succeeds or fails on its own (a batch all or nothing) and each
 * successful one takes its own version.
 */
class CreateRun implements ScriptedRun<CreateOutcome> {
  private readonly where: CreateReads = { candidateSet: candidateSet([], false) };
  private readonly inputs: RouteInput[];
  private placedFrom: Row[][] | undefined;
  private plannedHere: CreatePlan | undefined;
  private planned: Planned[] = [];
  private rows: RouteRow[] = [];
  private readonly tally = new WorkerTally();

  constructor(private readonly requests: HashedRequest[]) {
    this.inputs = requests.flatMap((r) => r.inputs);
  }

  private get askedPorts(): number[] {
    return this.inputs.flatMap((i) => (i.port !== undefined ? [i.port] : []));
  }

  reads(): Statement[] {
    const { inputs } = this;
    const statements: Statement[] = [];
    const ids = inputs.flatMap((i) => (i.id ? [i.id] : []));
    if (ids.length > 0) this.where.existing = statements.push(routesByIdsStatement(ids)) - 1;
    const pinned = [...new Set(inputs.flatMap((i) => (i.worker_id ? [i.worker_id] : [])))];
    const anywhere = inputs.filter((i) => !i.worker_id).length;
    this.where.candidateSet = leastLoadedSet(pinned, leastLoadedToRead(anywhere));
    this.where.candidates = statements.push(this.candidatesStatement()) - 1;
    const subdomains = inputs.flatMap((i) => (i.subdomain ? [i.subdomain] : []));
    if (subdomains.length > 0) {
      this.where.takenSubdomains = statements.push(takenSubdomainsStatement(subdomains)) - 1;
    }
    return statements;
  }

  private candidatesStatement(): Statement {
    return candidatesStatement(this.where.candidateSet, this.inputs.length, this.askedPorts);
  }

  /**
   * Places every request on the least loaded workers read; should a placement need a worker
   * left out, reads every candidate (once) to place them all again.
   */
  more(rows: Row[][]): Statement[] {
    this.place(rows);
    const unsure = this.planned.some((r) => !r.ok && r.error instanceof SnapshotTooSmall);
    if (!unsure || this.where.candidateSet.leastLoaded === null) return [];
    this.where.candidateSet = candidateSet(this.where.candidateSet.pinned, true);
    this.where.candidates = rows.length;
    return [this.candidatesStatement()];
  }

  private place(rows: Row[][]): CreatePlan {
    if (this.placedFrom !== rows || !this.plannedHere) {
      this.plannedHere = CreatePlan.fromRows(this.where, rows, this.askedPorts);
      this.planned = this.requests.map((request) => this.plannedHere!.place(request));
      this.placedFrom = rows;
    }
    return this.plannedHere;
  }

  plan(rows: Row[][], ctx: PlanContext): void {
    const plan = this.place(rows);
    const views = new Map<string, RouteView>();
    this.rows = plan.numberVersions(ctx, this.planned).map(({ p, result }) => {
      const row = routeRow(ctx, p, result.version!);
      const view = presentRoute(row, p.worker);
      views.set(p.id, view);
      ctx.record(result.version!, {
        workerId: p.worker.id,
        routeId: p.id,
        op: "upsert",
        route: view,
      });
      this.tally.add(p.worker.id, p.port);
      return row;
    });
    // Each request's routes, new or found, in the order it gave them.
    for (const result of this.planned) {
      if (!result.ok) continue;
      for (const p of result.placements) result.outcome.items[p.index] ??= views.get(p.id)!;
    }
  }

  writes(): Statement[] {
    if (this.rows.length === 0) return [];
    // The ports were read free under the lock; should one not be, the unique (worker, port) of
    // routes refuses the insert and the whole run.
    return [insertRoutesStatement(this.rows), this.tally.statement()];
  }

  results(): Array<RunResult<CreateOutcome>> {
    return this.planned.map((r) =>
      r.ok ? { ok: true, value: r.outcome, version: r.version } : { ok: false, error: r.error },
    );
  }
}
