import { randomUUID } from "node:crypto";
import {
  conflict,
  unavailable,
  unprocessable,
  type AppError,
  type FieldProblem,
} from "../errors.js";
import { hasRoom, leastLoaded, portInRange, servingRejection } from "../placement/placement.js";
import { freshSubdomain } from "../placement/subdomain.js";
import type { Statement } from "../db/prepared.js";
import type { Row } from "../db/script.js";
import type { PlanContext, RunResult, Scripted, ScriptedRun } from "../versioning/change.js";
import {
  adjustRouteCountsStatement,
  candidateSet,
  candidatesStatement,
  freePortsAmongStatement,
  takenSubdomainsStatement,
  type CandidateRow,
} from "../workers/repository.js";
import { requestHash } from "./hash.js";
import { presentRoute, type RouteRow, type RouteView } from "./model.js";
import { ELIGIBLE_STATUSES } from "../workers/model.js";
import {
  insertRoutesStatement,
  lowestFreePortsStatement,
  portsByWorker,
  routesByIdsStatement,
  splitWorker,
  takeLowestPortsStatement,
  takePortsStatement,
} from "./repository.js";
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

interface Placement {
  index: number;
  input: RouteInput;
  id: string;
  hash: string;
  worker: CandidateRow;
  port: number | null;
  subdomain: string | null;
  /** Takes the lowest free port of the worker when the rows are written. */
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

/** What a run of creates needs to know from the database, and the bookings made in memory. */
class CreatePlan {
  /** Routes created earlier in this run, by id: a later retry of the same id sees them. */
  private readonly createdHere = new Map<string, { hash: string; placement: Placement }>();
  private readonly bookedSubdomains = new Set<string>();

  private constructor(
    private readonly existing: Map<string, { hash: string; view: RouteView }>,
    private readonly workers: Map<string, CandidateRow>,
    private readonly pool: CandidateRow[],
    /** Free "worker:port" pairs among the ports some request asked for. */
    private readonly freeAsked: Set<string>,
    /** Taken "domain/subdomain" pairs among the subdomains some request asked for. */
    private readonly takenAsked: Set<string>,
    /** The lowest free ports of the likeliest workers, lowest first (see lowestFreePortsStatement). */
    readonly lowest: Map<string, number[]>,
  ) {}

  /** Builds the plan from the rows of CreateRun's reads. */
  static fromRows(reads: CreateReads, rows: Row[][]): CreatePlan {
    const at = (i: number | undefined) => (i === undefined ? [] : rows[i]!);
    const existing = new Map(
      at(reads.existing).map((row) => {
        const r = splitWorker(row);
        return [r.id, { hash: r.request_hash, view: presentRoute(r, r.w) }];
      }),
    );
    const workers = new Map<string, CandidateRow>();
    for (const row of at(reads.candidates) as unknown as CandidateRow[]) {
      workers.set(row.id, { ...row, free_ports: Number(row.free_ports) });
    }
    const pool = [...workers.values()].filter(
      (w) => w.status === "registered" || w.status === "alive",
    );
    const freeAsked = new Set(
      at(reads.freeAsked).map((r) => `${String(r.worker_id)}:${String(r.port)}`),
    );
    const takenAsked = new Set(
      at(reads.takenAsked).map((r) => `${String(r.wildcard_domain)}/${String(r.subdomain)}`),
    );
    const lowest = portsByWorker(at(reads.lowest));
    return new CreatePlan(existing, workers, pool, freeAsked, takenAsked, lowest);
  }

  /** Places one request's routes in memory; a failure undoes that request's bookings only. */
  place(request: HashedRequest): Planned {
    const undo: Array<() => void> = [];
    try {
      return this.placeRequest(request, undo);
    } catch (error) {
      for (const step of undo.reverse()) step();
      return { ok: false, error };
    }
  }

  private placeRequest({ inputs, batch, hashes }: HashedRequest, undo: Array<() => void>): Planned {
    const items: Array<RouteView | undefined> = inputs.map(() => undefined);
    const placements: Placement[] = [];
    const seen = new Set<string>();
    inputs.forEach((input, index) => {
      const hash = hashes[index]!;
      if (input.id) {
        if (seen.has(input.id)) {
          throw fail(conflict, `Route ${input.id} appears twice.`, at(index, batch, "id"));
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
      const worker = input.worker_id
        ? this.pinned(index, input, batch)
        : this.anywhere(index, input, batch);
      const placement = this.book(index, input, hash, worker, batch, undo);
      placements.push(placement);
    });
    const fresh = placements.filter((p) => !this.existing.has(p.id) && !this.createdHere.has(p.id));
    for (const p of fresh) {
      this.createdHere.set(p.id, { hash: p.hash, placement: p });
      undo.push(() => this.createdHere.delete(p.id));
    }
    return {
      ok: true,
      outcome: { items: items as RouteView[], created: fresh.length > 0 },
      placements,
    };
  }

  private pinned(index: number, input: RouteInput, batch: boolean): CandidateRow {
    const path = at(index, batch, "worker_id");
    const worker = this.workers.get(input.worker_id!);
    if (!worker) throw fail(unprocessable, `Worker ${input.worker_id} is unknown.`, path);
    const rejection = servingRejection(worker, input);
    if (rejection) throw fail(unprocessable, `Worker cannot take the route: ${rejection}.`, path);
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
    if (worker.capacity !== null && worker.route_count >= worker.capacity) {
      throw unavailable(`Worker ${worker.name} is at its capacity of ${worker.capacity} routes.`);
    }
    if (worker.frontend_mode === "port" && input.port === undefined && worker.free_ports <= 0) {
      throw unavailable(`Worker ${worker.name} has no free port left.`);
    }
    return worker;
  }

  private anywhere(index: number, input: RouteInput, batch: boolean): CandidateRow {
    const able = this.pool.filter((c) => servingRejection(c, input) === undefined && hasRoom(c));
    let fits = able;
    if (input.port !== undefined) {
      const inRange = able.filter((c) => portInRange(c, input.port!));
      fits = inRange.filter((c) => this.freeAsked.has(`${c.id}:${input.port}`));
      if (fits.length === 0 && inRange.length > 0) {
        throw fail(
          conflict,
          `Port ${input.port} is taken on every worker that could serve the route.`,
          at(index, batch, "port"),
        );
      }
    } else if (input.subdomain !== undefined) {
      const wildcard = able.filter((c) => c.frontend_mode === "wildcard");
      fits = wildcard.filter((c) => !this.subdomainTaken(c.wildcard_domain!, input.subdomain!));
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
      const selector =
        Object.keys(input.worker_selector).length > 0 ? ", with its worker_selector" : "";
      throw unavailable(
        `No worker can take the route${batch ? ` at routes.${index}` : ""} (${input.protocol}, ${input.mode}${selector}).`,
      );
    }
    return worker;
  }

  private subdomainTaken(domain: string, subdomain: string): boolean {
    const key = `${domain}/${subdomain}`;
    return this.takenAsked.has(key) || this.bookedSubdomains.has(key);
  }

  /** Books the route's port or subdomain on `worker` and counts it there. */
  private book(
    index: number,
    input: RouteInput,
    hash: string,
    worker: CandidateRow,
    batch: boolean,
    undo: Array<() => void>,
  ): Placement {
    let port: number | null = null;
    let subdomain: string | null = null;
    let needsPort = false;
    if (worker.frontend_mode === "port") {
      if (input.port !== undefined) {
        const key = `${worker.id}:${input.port}`;
        if (!this.freeAsked.has(key)) {
          throw fail(
            conflict,
            `Port ${input.port} is already taken on worker ${worker.name}.`,
            at(index, batch, "port"),
          );
        }
        this.freeAsked.delete(key);
        undo.push(() => this.freeAsked.add(key));
        port = input.port;
      } else needsPort = true;
    } else {
      subdomain = input.subdomain ?? freshSubdomain(input.app);
      if (this.subdomainTaken(worker.wildcard_domain!, subdomain)) {
        throw fail(
          conflict,
          `Subdomain ${subdomain} is already taken on ${worker.wildcard_domain}.`,
          at(index, batch, "subdomain"),
        );
      }
      const key = `${worker.wildcard_domain}/${subdomain}`;
      this.bookedSubdomains.add(key);
      undo.push(() => this.bookedSubdomains.delete(key));
    }
    const usesPort = worker.frontend_mode === "port";
    worker.route_count += 1;
    if (usesPort) worker.free_ports -= 1;
    undo.push(() => {
      worker.route_count -= 1;
      if (usesPort) worker.free_ports += 1;
    });
    return { index, input, id: input.id ?? randomUUID(), hash, worker, port, subdomain, needsPort };
  }

  /**
   * Gives a version to every request that creates something, in order; the routes to write, and
   * what the database must book for them.
   */
  prepare(ctx: PlanContext, results: Planned[]): Booking {
    const fresh: Booking["fresh"] = [];
    const written = new Set<string>();
    for (const result of results) {
      if (!result.ok) continue;
      const mine = result.placements.filter((p) => !written.has(p.id) && !this.existing.has(p.id));
      if (mine.length === 0) continue;
      result.version = ctx.takeVersion();
      for (const p of mine) {
        written.add(p.id);
        fresh.push({ placement: p, result });
      }
    }
    const asked = fresh.flatMap(({ placement: p }) =>
      p.port !== null && !p.needsPort ? [{ workerId: p.worker.id, port: p.port }] : [],
    );
    const needing = new Map<string, Placement[]>();
    for (const { placement: p } of fresh) {
      if (!p.needsPort) continue;
      const list = needing.get(p.worker.id);
      if (list) list.push(p);
      else needing.set(p.worker.id, [p]);
    }
    return { fresh, asked, needing };
  }

  /** The rows and the log entries of the booked routes, each under its request's version. */
  finish(ctx: PlanContext, results: Planned[], fresh: Booking["fresh"]): RouteRow[] {
    const views = new Map<string, RouteView>();
    const rows = fresh.map(({ placement: p, result }) => {
      const row: RouteRow = {
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
        version: result.version!,
        request_hash: p.hash,
        created_at: ctx.now,
        updated_at: ctx.now,
      };
      const view = presentRoute(row, p.worker);
      views.set(p.id, view);
      ctx.record(result.version!, {
        workerId: p.worker.id,
        routeId: p.id,
        op: "upsert",
        route: view,
      });
      return row;
    });
    this.fillRetries(results, views);
    return rows;
  }

  /** Puts each request's routes, new or found, in the order it gave them. */
  private fillRetries(results: Planned[], views: Map<string, RouteView>): void {
    for (const result of results) {
      if (!result.ok) continue;
      for (const p of result.placements) result.outcome.items[p.index] ??= views.get(p.id)!;
    }
  }
}

/** Up to this many portless routes in a run, their likely ports are read with the lock. */
const PREFETCH_PORTS_UP_TO = 32;

/** Which of CreateRun's read statements ran, by their place in the script. */
interface CreateReads {
  existing?: number;
  lowest?: number;
  candidates?: number;
  freeAsked?: number;
  takenAsked?: number;
}

/** What a run must book in the database before its routes can be written. */
interface Booking {
  fresh: Array<{ placement: Placement; result: Planned & { ok: true } }>;
  /** Ports a request asked for, known to be free. */
  asked: Array<{ workerId: string; port: number }>;
  /** Routes that take their worker's lowest free port, by worker. */
  needing: Map<string, Placement[]>;
}

/**
 * The create requests of one group: a few reads with the lock, placement and allocation in
 * memory, the ports booked in one statement, then one write per table. Each request succeeds or
 * fails on its own (a batch all or nothing) and each successful one takes its own version.
 */
class CreateRun implements ScriptedRun<CreateOutcome> {
  private readonly where: CreateReads = {};
  private ctx!: PlanContext;
  private memory!: CreatePlan;
  private planned: Planned[] = [];
  private booking: Booking = { fresh: [], asked: [], needing: new Map() };
  private rows: RouteRow[] = [];
  /** Ports booked from those read with the lock. */
  private readonly booked: Array<{ workerId: string; port: number }> = [];
  /** Workers whose lowest ports the middle statement books, and how many. */
  private fromDatabase = new Map<string, number>();
  /** Whether the middle statements booked the asked ports already. */
  private askedBooked = false;

  constructor(private readonly requests: HashedRequest[]) {}

  reads(): Statement[] {
    const inputs = this.requests.flatMap((r) => r.inputs);
    const statements: Statement[] = [];
    const add = (key: keyof CreateReads, statement: Statement) => {
      this.where[key] = statements.push(statement) - 1;
    };
    const ids = inputs.flatMap((i) => (i.id ? [i.id] : []));
    if (ids.length > 0) add("existing", routesByIdsStatement(ids));
    const pinned = [...new Set(inputs.flatMap((i) => (i.worker_id ? [i.worker_id] : [])))];
    const candidates = candidateSet(
      pinned,
      inputs.some((i) => !i.worker_id),
    );
    add("candidates", candidatesStatement(candidates, inputs.length));
    const ports = inputs.flatMap((i) => (i.port !== undefined ? [i.port] : []));
    if (ports.length > 0) add("freeAsked", freePortsAmongStatement(candidates, ports));
    const subdomains = inputs.flatMap((i) => (i.subdomain ? [i.subdomain] : []));
    if (subdomains.length > 0) add("takenAsked", takenSubdomainsStatement(candidates, subdomains));
    // Routes that may take a worker's lowest free port: read those ports now, while few, so that
    // booking them needs no round trip of its own.
    const portless = inputs.filter((i) => i.port === undefined && i.subdomain === undefined).length;
    if (portless > 0 && portless <= PREFETCH_PORTS_UP_TO) {
      const anywhere = inputs.some((i) => !i.worker_id) ? ELIGIBLE_STATUSES : [];
      add("lowest", lowestFreePortsStatement(pinned, anywhere, portless));
    }
    return statements;
  }

  plan(rows: Row[][], ctx: PlanContext): void {
    this.ctx = ctx;
    this.memory = CreatePlan.fromRows(this.where, rows);
    this.planned = this.requests.map((request) => this.memory.place(request));
    this.booking = this.memory.prepare(ctx, this.planned);
  }

  middle(): Statement[] {
    // Workers whose lowest ports were read with the lock book them in the writes; the others
    // have their ports booked here, in one statement for all of them.
    const fromDatabase = new Map<string, number>();
    const { asked } = this.booking;
    for (const [workerId, list] of this.booking.needing) {
      const known = (this.memory.lowest.get(workerId) ?? []).filter(
        (port) => !asked.some((a) => a.workerId === workerId && a.port === port),
      );
      if (known.length < list.length) {
        fromDatabase.set(workerId, list.length);
        continue;
      }
      list.forEach((p, i) => {
        p.port = known[i]!;
        this.booked.push({ workerId, port: p.port });
      });
    }
    this.fromDatabase = fromDatabase;
    if (fromDatabase.size === 0) return [];
    // The asked ports go first, so that the lowest free ports are not among them.
    this.askedBooked = asked.length > 0;
    return [
      ...(this.askedBooked ? [takePortsStatement(asked)] : []),
      takeLowestPortsStatement(fromDatabase),
    ];
  }

  afterMiddle(rows: Row[][]): void {
    if (this.fromDatabase.size > 0) {
      const booked = portsByWorker(rows[rows.length - 1]!);
      for (const [workerId, count] of this.fromDatabase) {
        const ports = booked.get(workerId) ?? [];
        if (ports.length < count) {
          throw new Error(`worker ${workerId} had fewer free ports than counted`);
        }
        this.booking.needing.get(workerId)!.forEach((p, i) => (p.port = ports[i]!));
      }
    }
    this.rows = this.memory.finish(this.ctx, this.planned, this.booking.fresh);
  }

  writes(): Statement[] {
    if (this.rows.length === 0) return [];
    const counts = new Map<string, number>();
    for (const row of this.rows) counts.set(row.worker_id, (counts.get(row.worker_id) ?? 0) + 1);
    // Ports known free under the lock: asked for, or read as a worker's lowest. Should one not
    // be, the unique (worker, port) of routes refuses the insert and the whole run.
    const taken = [...(this.askedBooked ? [] : this.booking.asked), ...this.booked];
    return [
      ...(taken.length > 0 ? [takePortsStatement(taken)] : []),
      insertRoutesStatement(this.rows),
      adjustRouteCountsStatement(counts),
    ];
  }

  results(): Array<RunResult<CreateOutcome>> {
    return this.planned.map((r) =>
      r.ok ? { ok: true, value: r.outcome, version: r.version } : { ok: false, error: r.error },
    );
  }
}
