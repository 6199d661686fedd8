import { randomUUID } from "node:crypto";
import type { Knex } from "knex";
import type { AccessTokenIssuer } from "../access/issuer.js";
import { DEFAULT_TTL_S } from "../access/schema.js";
import { setupUrl } from "../access/service.js";
import { DEFAULT_WAIT_MS } from "../http/answer.js";
import { validate } from "../http/validate.js";
import { presentRoute, type RouteRow, type RouteView } from "../routes/model.js";
import { findRoute } from "../routes/repository.js";
import { routeCreateSchema, type RouteInput } from "../routes/schema.js";
import type { RouteService } from "../routes/service.js";
import type { PropagationWatch } from "../versioning/propagation.js";
import type { Protocol } from "../workers/model.js";
import { invalidCredentials, objectNotFound } from "./errors.js";
import { findConfToken, insertConfToken, type ConfTokenRow } from "./repository.js";
import type { AppProtocol, AppRequest, AuthQuery, ConfInput } from "./schema.js";

/** How their application protocols are served: `preopen` is http, `vnc` and `rdp` are tcp. */
const SERVED_AS: Record<AppProtocol, Protocol> = {
  http: "http",
  preopen: "http",
  tcp: "tcp",
  vnc: "tcp",
  rdp: "tcp",
  grpc: "grpc",
  h2: "h2",
};

export interface OpenedApp {
  redirect_url: string;
  reuse: boolean;
  version?: number;
}

const clientIps = (raw: string | undefined): string[] =>
  (raw ?? "")
    .split(",")
    .map((ip) => ip.trim())
    .filter((ip) => ip.length > 0);

const sameSet = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && [...a].sort().join(",") === [...b].sort().join(",");

/**
 * A session's apps, opened from a browser: `POST /v2/conf` keeps what the Manager says of the
 * session's kernel under a new token; `/v2/proxy/auth` turns the token and an app into an
 * interactive route of that session (reusing one with the same app and access), and answers
 * with the worker's setup URL, where the browser gets its permit cookie, once the worker
 * serves the route.
 */
export class SessionService {
  constructor(
    private readonly knex: Knex,
    private readonly routes: RouteService,
    private readonly issuer: AccessTokenIssuer,
    private readonly watch: PropagationWatch,
  ) {}

  async conf(input: ConfInput): Promise<string> {
    const token = randomUUID();
    const session = input.session;
    const row: ConfTokenRow = {
      token,
      session_id: session.id,
      kernel_host: input.kernel_host,
      kernel_port: input.kernel_port,
      login_session_token: input.login_session_token,
      user_uuid: session.user_uuid,
      project_id: session.project_id ?? session.group_id ?? null,
      access_key: session.access_key,
      domain_name: session.domain_name,
      created_at: new Date(),
    };
    await insertConfToken(this.knex, row);
    return token;
  }

  async open(query: AuthQuery): Promise<OpenedApp> {
    const conf = /^[0-9a-f-]{36}$/i.test(query.token)
      ? await findConfToken(this.knex, query.token.toLowerCase())
      : undefined;
    if (!conf) throw objectNotFound("token");
    if (conf.session_id !== query.session_id) {
      throw invalidCredentials("E20007: Session ID mismatch");
    }
    const protocol = SERVED_AS[query.protocol];
    const allowed = clientIps(query.allowed_client_ips);
    let route = query.no_reuse ? undefined : await this.reusable(conf, query, allowed);
    const reuse = route !== undefined;
    let version: number | undefined;
    if (!route) {
      const input = validate<RouteInput>(routeCreateSchema, {
        session_id: conf.session_id,
        app: query.app,
        protocol,
        mode: "interactive",
        upstreams: [{ host: conf.kernel_host, port: conf.kernel_port, weight: 1 }],
        open_to_public: query.open_to_public,
        allowed_client_ips: allowed,
        user_id: conf.user_uuid,
        project_id: conf.project_id,
        ...(query.port !== undefined ? { port: query.port } : {}),
        ...(query.subdomain !== undefined ? { subdomain: query.subdomain } : {}),
      });
      const committed = await this.routes.create([input], false);
      route = committed.result.items[0]!;
      version = committed.version;
      // The browser goes to the worker next: answer once it serves the route (as wait=applied
      // does), or after DEFAULT_WAIT_MS at the latest.
      await this.watch.waitApplied(committed.version, committed.workerIds, DEFAULT_WAIT_MS);
    }
    return {
      redirect_url: await this.entry(route, conf, query),
      // Their web UI expects false for tcp whatever happened.
      reuse: reuse && route.protocol !== "tcp",
      ...(version !== undefined ? { version } : {}),
    };
  }

  /** The session's route of this app with the same access, if there is one (the oldest). */
  private async reusable(
    conf: ConfTokenRow,
    query: AppRequest,
    allowed: string[],
  ): Promise<RouteView | undefined> {
    const rows = (await this.knex("routes")
      .where({ session_id: conf.session_id, app: query.app, mode: "interactive" })
      .orderBy("created_at")) as RouteRow[];
    const match = rows.find(
      (r) =>
        r.open_to_public === query.open_to_public && sameSet(r.allowed_client_ips ?? [], allowed),
    );
    if (!match) return undefined;
    const route = await findRoute(this.knex, match.id);
    return route ? presentRoute(route, route.w) : undefined;
  }

  /**
   * Where the browser goes next: the worker's setup path with an access token for the route (and
   * the page to land on); a tcp route has no such path, so its address itself.
   */
  private async entry(route: RouteView, conf: ConfTokenRow, query: AppRequest): Promise<string> {
    if (route.protocol === "tcp") return route.url;
    const { token } = await this.issuer.issue(route.id, conf.user_uuid, DEFAULT_TTL_S);
    const url = setupUrl(route, token);
    return query.redirect ? `${url}&redirect=${encodeURIComponent(query.redirect)}` : url;
  }
}
