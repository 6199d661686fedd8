import http from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Api, startHarness, TOKENS } from "../support/harness.js";
import {
  portWorker,
  registerWorker,
  routeBody,
  type RouteAnswer,
  type WorkerAnswer,
} from "../support/factories.js";

type Harness = Awaited<ReturnType<typeof startHarness>>;

/** What the table's rows may point at: a real worker, its token and a route on it. */
interface Seed {
  worker: WorkerAnswer;
  registration: Record<string, unknown>;
  route: RouteAnswer;
  routeBody: Record<string, unknown>;
}

type Caller = "manager" | "admin" | "registration" | "worker" | "none" | "unknown";
type Lazy<T> = T | ((s: Seed) => T);

interface Row {
  name: string;
  method: "GET" | "POST" | "PATCH" | "DELETE" | "OPTIONS";
  path: Lazy<string>;
  /** Who calls; manager unless said otherwise. */
  as?: Caller;
  /** A JSON value to send, or `raw` text as it is. */
  body?: Lazy<unknown>;
  raw?: string;
  headers?: Lazy<Record<string, string>>;
  status: number;
  /** For field validation errors: paths that must appear in `errors`. */
  paths?: string[];
  /** Refused before any route matched (an unknown or undecodable path): no X-Routing-Version. */
  unrouted?: boolean;
}

interface Problem {
  type: unknown;
  title: unknown;
  status: unknown;
  detail: unknown;
  errors?: Array<{ path: unknown; message: unknown }>;
  routes?: unknown;
}

const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";
const SEED_ROUTE_ID = "5eed0000-0000-4000-8000-00000000a001";
const TWO_MIB = JSON.stringify({ padding: "x".repeat(2 * 1024 * 1024) });
const LONG_NAME = "a".repeat(64);
const BROKEN_JSON = '{"session_id": "s1", "app": ';

const worker = (s: Seed) => `/workers/${s.worker.worker.id}`;
const route = (s: Seed) => `/routes/${s.route.id}`;
const register = (overrides: Record<string, unknown>) => (s: Seed) => ({
  ...s.registration,
  ...overrides,
});
const newRoute = (overrides: Record<string, unknown> = {}) => routeBody(overrides);
const upstream = (overrides: Record<string, unknown> = {}) => ({
  host: "10.0.0.7",
  port: 8080,
  weight: 1,
  ...overrides,
});

const rows: Row[] = [
  // Authentication: no or unknown token is 401.
  {
    name: "POST /routes without a token",
    method: "POST",
    path: "/routes",
    as: "none",
    body: newRoute(),
    status: 401,
  },
  {
    name: "POST /routes with an unknown token",
    method: "POST",
    path: "/routes",
    as: "unknown",
    body: newRoute(),
    status: 401,
  },
  {
    name: "POST /routes with an invalid body and no token",
    method: "POST",
    path: "/routes",
    as: "none",
    body: { colour: 1 },
    status: 401,
  },
  {
    name: "POST /routes with a forged worker token",
    method: "POST",
    path: "/routes",
    as: "none",
    headers: (s) => ({ authorization: `Bearer wt1.${s.worker.worker.id}.forged-signature` }),
    body: newRoute(),
    status: 401,
  },
  {
    name: "POST /routes with Basic credentials",
    method: "POST",
    path: "/routes",
    as: "none",
    headers: { authorization: `Basic ${Buffer.from(`m:${TOKENS.manager}`).toString("base64")}` },
    body: newRoute(),
    status: 401,
  },
  {
    name: "POST /routes with a bearer token followed by more",
    method: "POST",
    path: "/routes",
    as: "none",
    headers: { authorization: `Bearer ${TOKENS.manager} ${TOKENS.manager}` },
    body: newRoute(),
    status: 401,
  },
  {
    name: "POST /routes/batch without a token",
    method: "POST",
    path: "/routes/batch",
    as: "none",
    body: { routes: [newRoute()] },
    status: 401,
  },
  {
    name: "GET /routes with an unknown token",
    method: "GET",
    path: "/routes",
    as: "unknown",
    status: 401,
  },
  { name: "GET /routes/{id} without a token", method: "GET", path: route, as: "none", status: 401 },
  {
    name: "PATCH /routes/{id} with an unknown token",
    method: "PATCH",
    path: route,
    as: "unknown",
    body: { open_to_public: true },
    status: 401,
  },
  {
    name: "DELETE /routes/{id} without a token",
    method: "DELETE",
    path: route,
    as: "none",
    status: 401,
  },
  {
    name: "DELETE /routes?session_id= without a token",
    method: "DELETE",
    path: (s) => `/routes?session_id=${s.route.session_id}`,
    as: "none",
    status: 401,
  },
  {
    name: "POST /workers/register without a token",
    method: "POST",
    path: "/workers/register",
    as: "none",
    body: portWorker(),
    status: 401,
  },
  {
    name: "POST /workers/register with an unknown token",
    method: "POST",
    path: "/workers/register",
    as: "unknown",
    body: portWorker(),
    status: 401,
  },
  {
    name: "GET /workers without a token",
    method: "GET",
    path: "/workers",
    as: "none",
    status: 401,
  },
  {
    name: "GET /workers/{id} with an unknown token",
    method: "GET",
    path: worker,
    as: "unknown",
    status: 401,
  },
  {
    name: "POST /workers/{id}/drain without a token",
    method: "POST",
    path: (s) => `${worker(s)}/drain`,
    as: "none",
    status: 401,
  },
  {
    name: "POST /workers/{id}/undrain with an unknown token",
    method: "POST",
    path: (s) => `${worker(s)}/undrain`,
    as: "unknown",
    status: 401,
  },
  {
    name: "DELETE /workers/{id} without a token",
    method: "DELETE",
    path: worker,
    as: "none",
    status: 401,
  },

  // Authorisation: a known token of the wrong role is 403.
  {
    name: "POST /routes with the admin token",
    method: "POST",
    path: "/routes",
    as: "admin",
    body: newRoute(),
    status: 403,
  },
  {
    name: "POST /routes with the registration token",
    method: "POST",
    path: "/routes",
    as: "registration",
    body: newRoute(),
    status: 403,
  },
  {
    name: "POST /routes with a worker token",
    method: "POST",
    path: "/routes",
    as: "worker",
    body: newRoute(),
    status: 403,
  },
  {
    name: "POST /routes/batch with the admin token",
    method: "POST",
    path: "/routes/batch",
    as: "admin",
    body: { routes: [newRoute()] },
    status: 403,
  },
  {
    name: "GET /routes with the registration token",
    method: "GET",
    path: "/routes",
    as: "registration",
    status: 403,
  },
  {
    name: "GET /routes with a worker token",
    method: "GET",
    path: "/routes",
    as: "worker",
    status: 403,
  },
  {
    name: "GET /routes/{id} with a worker token",
    method: "GET",
    path: route,
    as: "worker",
    status: 403,
  },
  {
    name: "PATCH /routes/{id} with the admin token",
    method: "PATCH",
    path: route,
    as: "admin",
    body: { open_to_public: true },
    status: 403,
  },
  {
    name: "DELETE /routes/{id} with the admin token",
    method: "DELETE",
    path: route,
    as: "admin",
    status: 403,
  },
  {
    name: "DELETE /routes?session_id= with the admin token",
    method: "DELETE",
    path: (s) => `/routes?session_id=${s.route.session_id}`,
    as: "admin",
    status: 403,
  },
  {
    name: "POST /workers/register with the manager token",
    method: "POST",
    path: "/workers/register",
    as: "manager",
    body: portWorker(),
    status: 403,
  },
  {
    name: "POST /workers/register with the admin token",
    method: "POST",
    path: "/workers/register",
    as: "admin",
    body: portWorker(),
    status: 403,
  },
  {
    name: "POST /workers/register with a worker token",
    method: "POST",
    path: "/workers/register",
    as: "worker",
    body: register({}),
    status: 403,
  },
  {
    name: "GET /workers with the registration token",
    method: "GET",
    path: "/workers",
    as: "registration",
    status: 403,
  },
  {
    name: "GET /workers with a worker token",
    method: "GET",
    path: "/workers",
    as: "worker",
    status: 403,
  },
  {
    name: "GET /workers/{id} with its own worker token",
    method: "GET",
    path: worker,
    as: "worker",
    status: 403,
  },
  {
    name: "POST /workers/{id}/drain with the registration token",
    method: "POST",
    path: (s) => `${worker(s)}/drain`,
    as: "registration",
    status: 403,
  },
  {
    name: "POST /workers/{id}/undrain with a worker token",
    method: "POST",
    path: (s) => `${worker(s)}/undrain`,
    as: "worker",
    status: 403,
  },
  {
    name: "DELETE /workers/{id} with its own worker token",
    method: "DELETE",
    path: worker,
    as: "worker",
    status: 403,
  },

  // Bodies: too large, not JSON, broken JSON.
  {
    name: "POST /routes with a 2 MiB body",
    method: "POST",
    path: "/routes",
    raw: TWO_MIB,
    status: 413,
  },
  {
    name: "POST /routes/batch with a 2 MiB body",
    method: "POST",
    path: "/routes/batch",
    raw: TWO_MIB,
    status: 413,
  },
  {
    name: "PATCH /routes/{id} with a 2 MiB body",
    method: "PATCH",
    path: route,
    raw: TWO_MIB,
    status: 413,
  },
  {
    name: "POST /workers/register with a 2 MiB body",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    raw: TWO_MIB,
    status: 413,
  },
  {
    name: "POST /routes with broken JSON",
    method: "POST",
    path: "/routes",
    raw: BROKEN_JSON,
    status: 400,
  },
  {
    name: "POST /routes/batch with broken JSON",
    method: "POST",
    path: "/routes/batch",
    raw: '{"routes": [',
    status: 400,
  },
  {
    name: "PATCH /routes/{id} with broken JSON",
    method: "PATCH",
    path: route,
    raw: "{open_to_public: true}",
    status: 400,
  },
  {
    name: "POST /workers/register with broken JSON",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    raw: '{"name": "w1",}',
    status: 400,
  },
  {
    name: "POST /routes with a text/plain body",
    method: "POST",
    path: "/routes",
    raw: JSON.stringify(newRoute()),
    headers: { "content-type": "text/plain" },
    status: 415,
  },
  {
    name: "POST /routes/batch with a text/plain body",
    method: "POST",
    path: "/routes/batch",
    raw: JSON.stringify({ routes: [newRoute()] }),
    headers: { "content-type": "text/plain" },
    status: 415,
  },
  {
    name: "PATCH /routes/{id} with a form body",
    method: "PATCH",
    path: route,
    raw: "open_to_public=true",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    status: 415,
  },
  {
    name: "POST /workers/register with a text/plain body",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    raw: JSON.stringify(portWorker()),
    headers: { "content-type": "text/plain" },
    status: 415,
  },
  {
    name: "POST /routes with JSON in an unsupported charset",
    method: "POST",
    path: "/routes",
    raw: JSON.stringify(newRoute()),
    headers: { "content-type": "application/json; charset=iso-8859-1" },
    status: 415,
  },
  {
    name: "POST /routes with a JSON array as body",
    method: "POST",
    path: "/routes",
    body: [newRoute()],
    status: 400,
    paths: ["(body)"],
  },
  {
    name: "POST /routes without a body",
    method: "POST",
    path: "/routes",
    status: 400,
    paths: ["session_id", "app", "upstreams"],
  },

  // POST /workers/register: field validation.
  {
    name: "register: a 64-character name",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ name: LONG_NAME }),
    status: 400,
    paths: ["name"],
  },
  {
    name: "register: a name with capitals and '_'",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ name: "Bad_Name" }),
    status: 400,
    paths: ["name"],
  },
  {
    name: "register: a name starting with '-'",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ name: "-w1" }),
    status: 400,
    paths: ["name"],
  },
  {
    name: "register: no name",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ name: undefined }),
    status: 400,
    paths: ["name"],
  },
  {
    name: "register: name is a number",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ name: 42 }),
    status: 400,
    paths: ["name"],
  },
  {
    name: "register: port 0 in port_range",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ port_range: [0, 10] }),
    status: 400,
    paths: ["port_range.0"],
  },
  {
    name: "register: port 65536 in port_range",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ port_range: [10200, 65536] }),
    status: 400,
    paths: ["port_range.1"],
  },
  {
    name: "register: a reversed port_range",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ port_range: [10299, 10200] }),
    status: 400,
    paths: ["port_range"],
  },
  {
    name: "register: a port_range whose last port is null",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ port_range: [10200, null] }),
    status: 400,
    paths: ["port_range.1"],
  },
  {
    name: "register: port_range of three ports",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ port_range: [1, 2, 3] }),
    status: 400,
    paths: ["port_range"],
  },
  {
    name: "register: port_range of strings",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ port_range: ["10200", "10299"] }),
    status: 400,
    paths: ["port_range.0", "port_range.1"],
  },
  {
    name: "register: port mode without port_range",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ port_range: undefined }),
    status: 400,
    paths: ["port_range"],
  },
  {
    name: "register: wildcard mode without wildcard_domain",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ frontend_mode: "wildcard", port_range: undefined }),
    status: 400,
    paths: ["wildcard_domain"],
  },
  {
    name: "register: an unknown frontend_mode",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ frontend_mode: "udp" }),
    status: 400,
    paths: ["frontend_mode"],
  },
  {
    name: "register: an unknown protocol",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ protocols: ["http", "udp"] }),
    status: 400,
    paths: ["protocols.1"],
  },
  {
    name: "register: an unknown mode",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ modes: ["batch"] }),
    status: 400,
    paths: ["modes.0"],
  },
  {
    name: "register: capacity 0",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ capacity: 0 }),
    status: 400,
    paths: ["capacity"],
  },
  {
    name: "register: capacity as a string",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ capacity: "5" }),
    status: 400,
    paths: ["capacity"],
  },
  {
    name: "register: tls as a string",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ tls: "yes" }),
    status: 400,
    paths: ["tls"],
  },
  {
    name: "register: a label value that is a number",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ labels: { gpu: 1 } }),
    status: 400,
    paths: ["labels.gpu"],
  },
  {
    name: "register: advertised_host that is no host",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ advertised_host: "not a host!" }),
    status: 400,
    paths: ["advertised_host"],
  },
  {
    name: "register: wildcard_traffic_port 65536",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ wildcard_traffic_port: 65536 }),
    status: 400,
    paths: ["wildcard_traffic_port"],
  },
  {
    name: "register: an unknown field",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ colour: "blue" }),
    status: 400,
    paths: ["colour"],
  },
  {
    name: "register: several bad fields at once",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ name: LONG_NAME, tls: 1, port_range: [0, 65536] }),
    status: 400,
    paths: ["name", "tls", "port_range.0", "port_range.1"],
  },
  {
    name: "register: timeout_ms=0",
    method: "POST",
    path: "/workers/register?timeout_ms=0",
    as: "registration",
    body: portWorker(),
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "register: an unknown query parameter",
    method: "POST",
    path: "/workers/register?colour=blue",
    as: "registration",
    body: portWorker(),
    status: 400,
    paths: ["query.colour"],
  },
  {
    name: "register: the seeded worker's port_range changes while it holds a route",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: register({ port_range: [10300, 10309] }),
    status: 409,
  },
  {
    name: "register: the seeded worker's frontend_mode changes while it holds a route",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: register({
      frontend_mode: "wildcard",
      port_range: undefined,
      wildcard_domain: "apps.example.com",
    }),
    status: 409,
  },

  // POST /routes: field validation.
  {
    name: "route: an unknown field",
    method: "POST",
    path: "/routes",
    body: newRoute({ colour: "blue" }),
    status: 400,
    paths: ["colour"],
  },
  {
    name: "route: a server field (url)",
    method: "POST",
    path: "/routes",
    body: newRoute({ url: "http://x/" }),
    status: 400,
    paths: ["url"],
  },
  {
    name: "route: session_id as a number",
    method: "POST",
    path: "/routes",
    body: newRoute({ session_id: 123 }),
    status: 400,
    paths: ["session_id"],
  },
  {
    name: "route: no app",
    method: "POST",
    path: "/routes",
    body: newRoute({ app: undefined }),
    status: 400,
    paths: ["app"],
  },
  {
    name: "route: no upstreams",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: [] }),
    status: 400,
    paths: ["upstreams"],
  },
  {
    name: "route: 65 upstreams",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: Array.from({ length: 65 }, () => upstream()) }),
    status: 400,
    paths: ["upstreams"],
  },
  {
    name: "route: upstreams as a string",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: "10.0.0.7:8080" }),
    status: 400,
    paths: ["upstreams"],
  },
  {
    name: "route: upstream port 0",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: [upstream({ port: 0 })] }),
    status: 400,
    paths: ["upstreams.0.port"],
  },
  {
    name: "route: upstream port 65536",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: [upstream(), upstream({ port: 65536 })] }),
    status: 400,
    paths: ["upstreams.1.port"],
  },
  {
    name: "route: upstream weight as a string",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: [upstream({ weight: "1" })] }),
    status: 400,
    paths: ["upstreams.0.weight"],
  },
  {
    name: "route: upstream weight 1.5",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: [upstream({ weight: 1.5 })] }),
    status: 400,
    paths: ["upstreams.0.weight"],
  },
  {
    name: "route: upstream with an unknown field",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: [upstream({ colour: "blue" })] }),
    status: 400,
    paths: ["upstreams.0.colour"],
  },
  {
    name: "route: upstream without host",
    method: "POST",
    path: "/routes",
    body: newRoute({ upstreams: [upstream({ host: undefined })] }),
    status: 400,
    paths: ["upstreams.0.host"],
  },
  {
    name: "route: port 0",
    method: "POST",
    path: "/routes",
    body: newRoute({ port: 0 }),
    status: 400,
    paths: ["port"],
  },
  {
    name: "route: port 65536",
    method: "POST",
    path: "/routes",
    body: newRoute({ port: 65536 }),
    status: 400,
    paths: ["port"],
  },
  {
    name: "route: port as a string",
    method: "POST",
    path: "/routes",
    body: newRoute({ port: "10201" }),
    status: 400,
    paths: ["port"],
  },
  {
    name: "route: both port and subdomain",
    method: "POST",
    path: "/routes",
    body: newRoute({ port: 10201, subdomain: "jupyter-1" }),
    status: 400,
    paths: ["port", "subdomain"],
  },
  {
    name: "route: a CIDR with /33",
    method: "POST",
    path: "/routes",
    body: newRoute({ allowed_client_ips: ["10.0.0.0/33"] }),
    status: 400,
    paths: ["allowed_client_ips.0"],
  },
  {
    name: "route: an address that is not one",
    method: "POST",
    path: "/routes",
    body: newRoute({ allowed_client_ips: ["10.0.0.0/8", "banana"] }),
    status: 400,
    paths: ["allowed_client_ips.1"],
  },
  {
    name: "route: an IPv4 octet over 255",
    method: "POST",
    path: "/routes",
    body: newRoute({ allowed_client_ips: ["10.0.0.256/32"] }),
    status: 400,
    paths: ["allowed_client_ips.0"],
  },
  {
    name: "route: an IPv6 prefix of /129",
    method: "POST",
    path: "/routes",
    body: newRoute({ allowed_client_ips: ["fd00::/8", "fd00::/129"] }),
    status: 400,
    paths: ["allowed_client_ips.1"],
  },
  {
    name: "route: allowed_client_ips as a string",
    method: "POST",
    path: "/routes",
    body: newRoute({ allowed_client_ips: "10.0.0.0/8" }),
    status: 400,
    paths: ["allowed_client_ips"],
  },
  {
    name: "route: an unknown protocol",
    method: "POST",
    path: "/routes",
    body: newRoute({ protocol: "udp" }),
    status: 400,
    paths: ["protocol"],
  },
  {
    name: "route: an unknown mode",
    method: "POST",
    path: "/routes",
    body: newRoute({ mode: "batch" }),
    status: 400,
    paths: ["mode"],
  },
  {
    name: "route: worker_id that is no uuid",
    method: "POST",
    path: "/routes",
    body: newRoute({ worker_id: "w1" }),
    status: 400,
    paths: ["worker_id"],
  },
  {
    name: "route: id that is no uuid",
    method: "POST",
    path: "/routes",
    body: newRoute({ id: "123" }),
    status: 400,
    paths: ["id"],
  },
  {
    name: "route: a subdomain that is no DNS label",
    method: "POST",
    path: "/routes",
    body: newRoute({ subdomain: "Bad_Sub" }),
    status: 400,
    paths: ["subdomain"],
  },
  {
    name: "route: expires_at that is no time",
    method: "POST",
    path: "/routes",
    body: newRoute({ expires_at: "tomorrow" }),
    status: 400,
    paths: ["expires_at"],
  },
  {
    name: "route: expires_at beyond what PostgreSQL stores",
    method: "POST",
    path: "/routes",
    body: newRoute({ expires_at: "+275760-09-13T00:00:00.000Z" }),
    status: 400,
    paths: ["expires_at"],
  },
  {
    name: "route: expires_at before the year 1",
    method: "POST",
    path: "/routes",
    body: newRoute({ expires_at: "-004714-11-23T00:00:00.000Z" }),
    status: 400,
    paths: ["expires_at"],
  },
  {
    name: "batch: expires_at beyond what PostgreSQL stores",
    method: "POST",
    path: "/routes/batch",
    body: { routes: [newRoute(), newRoute({ expires_at: "+275760-09-13T00:00:00.000Z" })] },
    status: 400,
    paths: ["routes.1.expires_at"],
  },
  {
    name: "route: a health_check with a relative path and interval 0",
    method: "POST",
    path: "/routes",
    body: newRoute({ health_check: { path: "healthz", interval_s: 0, max_wait_s: 5 } }),
    status: 400,
    paths: ["health_check.path", "health_check.interval_s"],
  },
  {
    name: "route: open_to_public as a string",
    method: "POST",
    path: "/routes",
    body: newRoute({ open_to_public: "yes" }),
    status: 400,
    paths: ["open_to_public"],
  },
  {
    name: "route: a health_check path that splits the request (CR LF)",
    method: "POST",
    path: "/routes",
    body: newRoute({
      mode: "inference",
      health_check: { path: "/\r\nX-Injected: 1", interval_s: 5, max_wait_s: 5 },
    }),
    status: 400,
    paths: ["health_check.path"],
  },
  {
    name: "route: a health_check path with a space",
    method: "POST",
    path: "/routes",
    body: newRoute({ health_check: { path: "/a b", interval_s: 5, max_wait_s: 5 } }),
    status: 400,
    paths: ["health_check.path"],
  },
  {
    name: "route: control characters in labels, selector, app and ids",
    method: "POST",
    path: "/routes",
    body: newRoute({
      labels: { crlf: "a\r\nb", sep: "a\u2028b", del: "a\u007fb", nel: "a\u0085b" },
      worker_selector: { zone: "eu\n" },
      app: "jupyter\t",
      session_id: "s\r1",
      kernel_id: "k\n",
      endpoint_id: "e\u2029",
      user_id: "u\u001b",
      project_id: "p\n",
    }),
    status: 400,
    paths: [
      "labels.crlf",
      "labels.sep",
      "labels.del",
      "labels.nel",
      "worker_selector.zone",
      "app",
      "session_id",
      "kernel_id",
      "endpoint_id",
      "user_id",
      "project_id",
    ],
  },
  {
    name: "patch route: a label value with a line feed",
    method: "PATCH",
    path: route,
    body: { labels: { note: "a\nb" } },
    status: 400,
    paths: ["labels.note"],
  },
  {
    name: "register: a label value with CR LF",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ labels: { zone: "eu\r\nX-Injected: 1" } }),
    status: 400,
    paths: ["labels.zone"],
  },
  {
    name: "list routes: a label filter with a line feed",
    method: "GET",
    path: "/routes?label=zone:eu%0A",
    status: 400,
    paths: ["query.label"],
  },
  {
    name: "list routes: a label filter whose key cannot be stored",
    method: "GET",
    path: "/routes?label=bad%20key:v",
    status: 400,
    paths: ["query.label"],
  },
  {
    name: "list routes: a session_id filter with a carriage return",
    method: "GET",
    path: "/routes?session_id=s%0D1",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "delete by session: a session_id with a line separator",
    method: "DELETE",
    path: "/routes?session_id=s%E2%80%A81",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "route: a label key with a space",
    method: "POST",
    path: "/routes",
    body: newRoute({ labels: { "bad key": "v" } }),
    status: 400,
    paths: ["labels.bad key"],
  },
  {
    name: "route: worker_selector as an array",
    method: "POST",
    path: "/routes",
    body: newRoute({ worker_selector: ["gpu"] }),
    status: 400,
    paths: ["worker_selector"],
  },
  {
    name: "route: timeout_ms=0",
    method: "POST",
    path: "/routes?wait=applied&timeout_ms=0",
    body: newRoute(),
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "route: timeout_ms=30001",
    method: "POST",
    path: "/routes?wait=applied&timeout_ms=30001",
    body: newRoute(),
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "route: timeout_ms that is no number",
    method: "POST",
    path: "/routes?timeout_ms=soon",
    body: newRoute(),
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "route: wait=bogus",
    method: "POST",
    path: "/routes?wait=bogus",
    body: newRoute(),
    status: 400,
    paths: ["query.wait"],
  },
  {
    name: "route: an unknown query parameter",
    method: "POST",
    path: "/routes?colour=blue",
    body: newRoute(),
    status: 400,
    paths: ["query.colour"],
  },

  {
    name: "route: a __proto__ field",
    method: "POST",
    path: "/routes",
    raw: JSON.stringify(newRoute()).replace(/^\{/, '{"__proto__": {"worker_id": "x"}, '),
    status: 400,
    paths: ["__proto__"],
  },

  {
    name: "register: a __proto__ key among the labels",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    raw: JSON.stringify(portWorker({ labels: { zone: "a" } })).replace(
      '"labels":{',
      '"labels":{"__proto__":{"dedicated":true},',
    ),
    status: 400,
    paths: ["labels.__proto__"],
  },

  // POST /routes: refused by the state of the table.
  {
    name: "route: a port taken on every worker that could serve it, unpinned",
    method: "POST",
    path: "/routes",
    body: (s: Seed) => newRoute({ port: s.route.port }),
    status: 409,
    paths: ["port"],
  },
  {
    name: "route: a port taken on the pinned worker",
    method: "POST",
    path: "/routes",
    body: (s: Seed) => newRoute({ worker_id: s.worker.worker.id, port: s.route.port }),
    status: 409,
    paths: ["port"],
  },
  {
    name: "route: the seeded route's id with another body",
    method: "POST",
    path: "/routes",
    body: (s: Seed) => ({ ...s.routeBody, app: "tensorboard" }),
    status: 409,
  },
  {
    name: "route: pinned to an unknown worker",
    method: "POST",
    path: "/routes",
    body: newRoute({ worker_id: UNKNOWN_ID }),
    status: 422,
    paths: ["worker_id"],
  },
  {
    name: "route: a port outside the pinned worker's range",
    method: "POST",
    path: "/routes",
    body: (s: Seed) => newRoute({ worker_id: s.worker.worker.id, port: 9000 }),
    status: 422,
    paths: ["port"],
  },
  {
    name: "route: a subdomain on a port-mode worker",
    method: "POST",
    path: "/routes",
    body: (s: Seed) => newRoute({ worker_id: s.worker.worker.id, subdomain: "jupyter-1" }),
    status: 422,
    paths: ["subdomain"],
  },
  {
    name: "route: a protocol the pinned worker does not serve",
    method: "POST",
    path: "/routes",
    body: (s: Seed) => newRoute({ worker_id: s.worker.worker.id, protocol: "grpc" }),
    status: 422,
    paths: ["worker_id"],
  },
  {
    name: "route: a worker_selector no worker matches",
    method: "POST",
    path: "/routes",
    body: newRoute({ worker_selector: { gpu: "h100" } }),
    status: 503,
  },

  // POST /routes/batch.
  {
    name: "batch: empty",
    method: "POST",
    path: "/routes/batch",
    body: { routes: [] },
    status: 400,
    paths: ["routes"],
  },
  {
    name: "batch: 1001 routes",
    method: "POST",
    path: "/routes/batch",
    body: { routes: Array.from({ length: 1001 }, () => newRoute()) },
    status: 400,
    paths: ["routes"],
  },
  {
    name: "batch: no routes field",
    method: "POST",
    path: "/routes/batch",
    body: {},
    status: 400,
    paths: ["routes"],
  },
  {
    name: "batch: routes as an object",
    method: "POST",
    path: "/routes/batch",
    body: { routes: newRoute() },
    status: 400,
    paths: ["routes"],
  },
  {
    name: "batch: an unknown field",
    method: "POST",
    path: "/routes/batch",
    body: { routes: [newRoute()], colour: "blue" },
    status: 400,
    paths: ["colour"],
  },
  {
    name: "batch: one bad route among good ones",
    method: "POST",
    path: "/routes/batch",
    body: {
      routes: [
        newRoute(),
        newRoute({ upstreams: [upstream({ port: 65536 })] }),
        newRoute({ port: 0 }),
      ],
    },
    status: 400,
    paths: ["routes.1.upstreams.0.port", "routes.2.port"],
  },
  {
    name: "batch: both port and subdomain in one route",
    method: "POST",
    path: "/routes/batch",
    body: { routes: [newRoute(), newRoute({ port: 10201, subdomain: "a" })] },
    status: 400,
    paths: ["routes.1.port", "routes.1.subdomain"],
  },
  {
    name: "batch: the same id twice",
    method: "POST",
    path: "/routes/batch",
    body: {
      routes: [
        newRoute({ id: "5eed0000-0000-4000-8000-00000000b001" }),
        newRoute({ id: "5eed0000-0000-4000-8000-00000000b001" }),
      ],
    },
    status: 400,
    paths: ["routes.1.id"],
  },
  {
    name: "batch: timeout_ms=30001",
    method: "POST",
    path: "/routes/batch?timeout_ms=30001",
    body: { routes: [newRoute()] },
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "batch: a taken port after a good route (all or nothing)",
    method: "POST",
    path: "/routes/batch",
    body: (s: Seed) => ({
      routes: [newRoute(), newRoute({ worker_id: s.worker.worker.id, port: s.route.port })],
    }),
    status: 409,
    paths: ["routes.1.port"],
  },
  {
    name: "batch: a route no worker can take after a good one",
    method: "POST",
    path: "/routes/batch",
    body: { routes: [newRoute(), newRoute({ worker_selector: { gpu: "h100" } })] },
    status: 503,
  },

  // GET /routes.
  {
    name: "list routes: limit=0",
    method: "GET",
    path: "/routes?limit=0",
    status: 400,
    paths: ["query.limit"],
  },
  {
    name: "list routes: limit=1001",
    method: "GET",
    path: "/routes?limit=1001",
    as: "admin",
    status: 400,
    paths: ["query.limit"],
  },
  {
    name: "list routes: limit that is no number",
    method: "GET",
    path: "/routes?limit=many",
    status: 400,
    paths: ["query.limit"],
  },
  {
    name: "list routes: an unknown mode",
    method: "GET",
    path: "/routes?mode=batch",
    status: 400,
    paths: ["query.mode"],
  },
  {
    name: "list routes: worker_id that is no uuid",
    method: "GET",
    path: "/routes?worker_id=w1",
    status: 400,
    paths: ["query.worker_id"],
  },
  {
    name: "list routes: a label without ':'",
    method: "GET",
    path: "/routes?label=gpu",
    status: 400,
    paths: ["query.label"],
  },
  {
    name: "list routes: inactive_since that is no time",
    method: "GET",
    path: "/routes?inactive_since=yesterday",
    status: 400,
    paths: ["query.inactive_since"],
  },
  {
    name: "list routes: a cursor it never gave out",
    method: "GET",
    path: "/routes?cursor=not-a-cursor",
    status: 400,
    paths: ["query.cursor"],
  },
  {
    name: "list routes: inactive_since beyond what PostgreSQL stores",
    method: "GET",
    path: "/routes?inactive_since=%2B275760-09-13T00:00:00.000Z",
    status: 400,
    paths: ["query.inactive_since"],
  },
  {
    name: "list routes: inactive_since before the year 1",
    method: "GET",
    path: "/routes?inactive_since=-004714-11-23T00:00:00.000Z",
    status: 400,
    paths: ["query.inactive_since"],
  },
  {
    name: "list routes: a forged cursor that decodes to no uuid",
    method: "GET",
    path: `/routes?cursor=${Buffer.from("-".repeat(36)).toString("base64url")}`,
    status: 400,
    paths: ["query.cursor"],
  },
  {
    name: "list routes: session_id twice",
    method: "GET",
    path: "/routes?session_id=a&session_id=b",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "list routes: an unknown query parameter",
    method: "GET",
    path: "/routes?colour=blue",
    status: 400,
    paths: ["query.colour"],
  },

  // GET /routes/{id}.
  { name: "get route: unknown id", method: "GET", path: `/routes/${UNKNOWN_ID}`, status: 404 },
  {
    name: "get route: an id that is no uuid",
    method: "GET",
    path: "/routes/not-a-uuid",
    status: 404,
  },
  {
    name: "get route: an unknown query parameter",
    method: "GET",
    path: (s) => `${route(s)}?colour=blue`,
    status: 400,
    paths: ["query.colour"],
  },

  // PATCH /routes/{id}.
  {
    name: "patch route: an unknown field",
    method: "PATCH",
    path: route,
    body: { colour: "blue" },
    status: 400,
    paths: ["colour"],
  },
  {
    name: "patch route: expires_at that is no time",
    method: "PATCH",
    path: route,
    body: { expires_at: "soon" },
    status: 400,
    paths: ["expires_at"],
  },
  {
    name: "patch route: expires_at beyond what PostgreSQL stores",
    method: "PATCH",
    path: route,
    body: { expires_at: "+275760-09-13T00:00:00.000Z" },
    status: 400,
    paths: ["expires_at"],
  },
  {
    name: "patch route: a JSON string as body",
    method: "PATCH",
    path: route,
    raw: '"open"',
    status: 400,
  },
  { name: "patch route: an empty patch", method: "PATCH", path: route, body: {}, status: 400 },
  {
    name: "patch route: a field that cannot change (app)",
    method: "PATCH",
    path: route,
    body: { app: "tensorboard" },
    status: 400,
    paths: ["app"],
  },
  {
    name: "patch route: a field that cannot change (port)",
    method: "PATCH",
    path: route,
    body: { port: 10205 },
    status: 400,
    paths: ["port"],
  },
  {
    name: "patch route: a bad CIDR",
    method: "PATCH",
    path: route,
    body: { allowed_client_ips: ["10.0.0.0/8", "10.0.0.0/40"] },
    status: 400,
    paths: ["allowed_client_ips.1"],
  },
  {
    name: "patch route: upstream port 65536",
    method: "PATCH",
    path: route,
    body: { upstreams: [upstream({ port: 65536 })] },
    status: 400,
    paths: ["upstreams.0.port"],
  },
  {
    name: "patch route: upstream port 0",
    method: "PATCH",
    path: route,
    body: { upstreams: [upstream({ port: 0 })] },
    status: 400,
    paths: ["upstreams.0.port"],
  },
  {
    name: "patch route: open_to_public as a number",
    method: "PATCH",
    path: route,
    body: { open_to_public: 1 },
    status: 400,
    paths: ["open_to_public"],
  },
  {
    name: "patch route: wait=bogus",
    method: "PATCH",
    path: (s) => `${route(s)}?wait=bogus`,
    body: { open_to_public: true },
    status: 400,
    paths: ["query.wait"],
  },
  {
    name: "patch route: timeout_ms=0",
    method: "PATCH",
    path: (s) => `${route(s)}?wait=applied&timeout_ms=0`,
    body: { open_to_public: true },
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "patch route: If-Match of another version",
    method: "PATCH",
    path: route,
    body: { open_to_public: true },
    headers: (s) => ({ "if-match": `"${s.route.version + 1000}"` }),
    status: 412,
  },
  {
    name: "patch route: If-Match with the route's ETag as a weak tag (strong comparison)",
    method: "PATCH",
    path: route,
    body: { open_to_public: true },
    headers: (s) => ({ "if-match": `W/"${s.route.version}"` }),
    status: 412,
  },
  {
    name: "patch route: If-Match that is no ETag",
    method: "PATCH",
    path: route,
    body: { open_to_public: true },
    headers: { "if-match": "garbage" },
    status: 412,
  },
  {
    name: "patch route: unknown id",
    method: "PATCH",
    path: `/routes/${UNKNOWN_ID}`,
    body: { open_to_public: true },
    status: 404,
  },

  // DELETE /routes/{id}.
  {
    name: "delete route: If-Match of another version",
    method: "DELETE",
    path: route,
    headers: (s) => ({ "if-match": `"${s.route.version - 1}"` }),
    status: 412,
  },
  {
    name: "delete route: unknown id",
    method: "DELETE",
    path: `/routes/${UNKNOWN_ID}`,
    status: 404,
  },
  {
    name: "delete route: timeout_ms=30001",
    method: "DELETE",
    path: (s) => `${route(s)}?timeout_ms=30001`,
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "delete route: an unknown query parameter",
    method: "DELETE",
    path: (s) => `${route(s)}?force=true`,
    status: 400,
    paths: ["query.force"],
  },

  // DELETE /routes?session_id=.
  {
    name: "delete session: no filter",
    method: "DELETE",
    path: "/routes",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "delete session: an empty session_id",
    method: "DELETE",
    path: "/routes?session_id=",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "delete session: another filter instead",
    method: "DELETE",
    path: "/routes?app=jupyter",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "delete session: an unknown query parameter",
    method: "DELETE",
    path: (s) => `/routes?session_id=${s.route.session_id}&colour=blue`,
    status: 400,
    paths: ["query.colour"],
  },
  {
    name: "delete session: wait=bogus",
    method: "DELETE",
    path: (s) => `/routes?session_id=${s.route.session_id}&wait=bogus`,
    status: 400,
    paths: ["query.wait"],
  },

  // /workers.
  {
    name: "list workers: an unknown status",
    method: "GET",
    path: "/workers?status=sleeping",
    status: 400,
    paths: ["query.status"],
  },
  {
    name: "list workers: an unknown query parameter",
    method: "GET",
    path: "/workers?colour=blue",
    as: "admin",
    status: 400,
    paths: ["query.colour"],
  },
  { name: "get worker: unknown id", method: "GET", path: `/workers/${UNKNOWN_ID}`, status: 404 },
  {
    name: "get worker: an id that is no uuid",
    method: "GET",
    path: "/workers/w1",
    as: "admin",
    status: 404,
  },
  {
    name: "get worker: an unknown query parameter",
    method: "GET",
    path: (s) => `${worker(s)}?colour=blue`,
    status: 400,
    paths: ["query.colour"],
  },
  { name: "drain: unknown id", method: "POST", path: `/workers/${UNKNOWN_ID}/drain`, status: 404 },
  {
    name: "drain: migrate=maybe",
    method: "POST",
    path: (s) => `${worker(s)}/drain?migrate=maybe`,
    status: 400,
    paths: ["query.migrate"],
  },
  {
    name: "drain: timeout_ms=0",
    method: "POST",
    path: (s) => `${worker(s)}/drain?timeout_ms=0`,
    as: "admin",
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "drain: an unknown query parameter",
    method: "POST",
    path: (s) => `${worker(s)}/drain?force=true`,
    status: 400,
    paths: ["query.force"],
  },
  {
    name: "undrain: unknown id",
    method: "POST",
    path: `/workers/${UNKNOWN_ID}/undrain`,
    status: 404,
  },
  {
    name: "undrain: wait=bogus",
    method: "POST",
    path: (s) => `${worker(s)}/undrain?wait=bogus`,
    status: 400,
    paths: ["query.wait"],
  },
  {
    name: "undrain: an unknown query parameter",
    method: "POST",
    path: (s) => `${worker(s)}/undrain?migrate=true`,
    status: 400,
    paths: ["query.migrate"],
  },
  {
    name: "delete worker: unknown id",
    method: "DELETE",
    path: `/workers/${UNKNOWN_ID}`,
    status: 404,
  },
  {
    name: "delete worker: force=yes",
    method: "DELETE",
    path: (s) => `${worker(s)}?force=yes`,
    status: 400,
    paths: ["query.force"],
  },
  {
    name: "delete worker: timeout_ms=30001",
    method: "DELETE",
    path: (s) => `${worker(s)}?timeout_ms=30001`,
    as: "admin",
    status: 400,
    paths: ["query.timeout_ms"],
  },
  {
    name: "delete worker: an unknown query parameter",
    method: "DELETE",
    path: (s) => `${worker(s)}?migrate=true`,
    status: 400,
    paths: ["query.migrate"],
  },
  {
    name: "delete worker: its route has nowhere to go",
    method: "DELETE",
    path: worker,
    status: 409,
  },

  // Paths, queries and bodies that are not what they claim to be.
  {
    name: "GET /routes/{id}: a path that is not valid percent-encoded UTF-8",
    method: "GET",
    path: "/routes/%E0%A4%A",
    as: "admin",
    status: 400,
  },
  {
    name: "drain: a worker id with a broken percent-escape, without a token",
    method: "POST",
    path: "/workers/%zz/drain",
    as: "none",
    status: 401,
  },
  {
    name: "drain: a worker id with a broken percent-escape",
    method: "POST",
    path: "/workers/%zz/drain",
    status: 400,
    unrouted: true,
  },
  {
    name: "DELETE /routes: a session_id that is not valid percent-encoded UTF-8",
    method: "DELETE",
    path: "/routes?session_id=%E0%A4%A",
    status: 400,
  },
  {
    name: "GET /routes: a filter with a broken percent-escape",
    method: "GET",
    path: "/routes?app=%zz",
    status: 400,
  },
  {
    name: "POST /routes: the body null",
    method: "POST",
    path: "/routes",
    raw: "null",
    status: 400,
  },
  {
    name: "POST /routes/batch: the body a JSON string",
    method: "POST",
    path: "/routes/batch",
    raw: '"routes"',
    status: 400,
  },

  // Text PostgreSQL cannot store: a NUL character, an unpaired surrogate (JSON escapes of both).
  {
    name: "POST /routes: a label value with a NUL character",
    method: "POST",
    path: "/routes",
    raw: JSON.stringify(newRoute()).replace(/}$/, ',"labels":{"tier":"a\\u0000b"}}'),
    status: 400,
    paths: ["labels.tier"],
  },
  {
    name: "POST /routes: a session_id with an unpaired surrogate",
    method: "POST",
    path: "/routes",
    body: newRoute({ session_id: "sess-\ud800" }),
    status: 400,
    paths: ["session_id"],
  },
  {
    name: "POST /routes/batch: a user_id with a NUL character",
    method: "POST",
    path: "/routes/batch",
    body: { routes: [newRoute({ user_id: "u\u0000" })] },
    status: 400,
    paths: ["routes.0.user_id"],
  },
  {
    name: "PATCH /routes/{id}: a label key with an unpaired low surrogate",
    method: "PATCH",
    path: route,
    body: { labels: { "k\udc00": "v" } },
    status: 400,
    paths: ["labels.k\udc00"],
  },
  {
    name: "register: a worker label with a NUL character",
    method: "POST",
    path: "/workers/register",
    as: "registration",
    body: portWorker({ labels: { zone: "eu\u0000" } }),
    status: 400,
    paths: ["labels.zone"],
  },
  {
    name: "GET /routes: a session_id filter with a NUL character",
    method: "GET",
    path: "/routes?session_id=a%00b",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "GET /routes: a label filter with a NUL character",
    method: "GET",
    path: "/routes?label=a%00:b",
    status: 400,
    paths: ["query.label"],
  },
  {
    name: "DELETE /routes: a session_id with a NUL character",
    method: "DELETE",
    path: "/routes?session_id=a%00b",
    status: 400,
    paths: ["query.session_id"],
  },
  {
    name: "POST /routes: a body that Content-Encoding calls gzip and is not",
    method: "POST",
    path: "/routes",
    raw: JSON.stringify(newRoute()),
    headers: { "content-encoding": "gzip" },
    status: 400,
  },
  {
    name: "POST /routes: a body that Content-Encoding calls br and is not",
    method: "POST",
    path: "/routes",
    raw: JSON.stringify(newRoute()),
    headers: { "content-encoding": "br" },
    status: 400,
  },

  // Paths that do not exist.
  { name: "an unknown path", method: "GET", path: "/nowhere", as: "none", status: 404 },
  // No path answers OPTIONS, with or without a token (Express would list the methods, unasked).
  {
    name: "OPTIONS /routes without a token",
    method: "OPTIONS",
    path: "/routes",
    as: "none",
    status: 404,
    unrouted: true,
  },
  {
    name: "OPTIONS /workers/{id}",
    method: "OPTIONS",
    path: worker,
    as: "admin",
    status: 404,
    unrouted: true,
  },
  {
    name: "an unknown path under /workers",
    method: "POST",
    path: (s) => `${worker(s)}/reboot`,
    status: 404,
    unrouted: true,
  },
];

const TABLES: Array<{ table: string; orderBy: string[] }> = [
  { table: "routing_state", orderBy: ["id"] },
  { table: "workers", orderBy: ["id"] },
  { table: "routes", orderBy: ["id"] },
  { table: "changes", orderBy: ["version"] },
  { table: "change_entries", orderBy: ["version", "worker_id", "route_id"] },
];

/** Every row of the routing model, in a fixed order, as JSON text per table. */
async function snapshot(h: Harness): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const { table, orderBy } of TABLES) {
    const rowsOf = (await h.database.knex(table).select("*").orderBy(orderBy)) as unknown[];
    out[table] = JSON.stringify(rowsOf, (_key, value: unknown) =>
      typeof value === "bigint" ? value.toString() : value,
    );
  }
  return out;
}

let h: Harness;
let seed: Seed;
let before: Record<string, string>;
const versionHeaders: string[] = [];

beforeAll(async () => {
  // No worker may turn lost while the table runs: that would change rows on its own.
  h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
  const registration = portWorker({ port_range: [10200, 10209], labels: { role: "seed" } });
  const worker = await registerWorker(h.registration, registration);
  const body = routeBody({
    id: SEED_ROUTE_ID,
    worker_id: worker.worker.id,
    allowed_client_ips: ["10.0.0.0/8"],
  });
  const created = await h.manager.post<RouteAnswer>("/routes", body);
  expect(created.status).toBe(201);
  const other = await h.manager.post<RouteAnswer>(
    "/routes",
    routeBody({ worker_id: worker.worker.id }),
  );
  expect(other.status).toBe(201);
  seed = { worker, registration, route: created.body, routeBody: body };
  before = await snapshot(h);
});
afterAll(() => h?.close());

function callerApi(as: Caller): Api {
  switch (as) {
    case "manager":
      return h.manager;
    case "admin":
      return h.admin;
    case "registration":
      return h.registration;
    case "worker":
      return h.anonymous.as(seed.worker.token);
    case "none":
      return h.anonymous;
    case "unknown":
      return h.anonymous.as("no-such-token-0123456789abcdef");
  }
}

const resolve = <T>(value: Lazy<T> | undefined): T | undefined =>
  typeof value === "function" ? (value as (s: Seed) => T)(seed) : value;

describe("bad requests", () => {
  it("covers every endpoint with at least 45 rows", () => {
    expect(rows.length).toBeGreaterThanOrEqual(45);
    const covered = new Set(
      rows.map((r) => {
        const path = resolve(r.path)!
          .split("?")[0]!
          .replace(/[0-9a-f-]{36}/g, "{id}");
        return `${r.method} ${path}`;
      }),
    );
    const endpoints = [
      "POST /workers/register",
      "GET /workers",
      "GET /workers/{id}",
      "POST /workers/{id}/drain",
      "POST /workers/{id}/undrain",
      "DELETE /workers/{id}",
      "POST /routes",
      "POST /routes/batch",
      "GET /routes",
      "GET /routes/{id}",
      "PATCH /routes/{id}",
      "DELETE /routes/{id}",
      "DELETE /routes",
    ];
    for (const endpoint of endpoints) expect([...covered]).toContain(endpoint);
    // The snapshot must hold something for "unchanged" to mean anything.
    expect(JSON.parse(before.workers!)).toHaveLength(1);
    expect(JSON.parse(before.routes!)).toHaveLength(2);
    const [seedWorker] = JSON.parse(before.workers!) as Array<{ free_port_ranges: string }>;
    expect(seedWorker!.free_port_ranges).toMatch(/^\{\[\d+,\d+\)/);
  });

  it.each(rows)("$name: $status", async (row) => {
    const api = callerApi(row.as ?? "manager");
    const path = resolve(row.path)!;
    const headers = { ...resolve(row.headers) };
    let body = resolve(row.body);
    if (row.raw !== undefined) {
      body = row.raw;
      headers["content-type"] ??= "application/json";
    }
    const res = await api.request<Problem>(row.method, path, body, headers);
    if (res.headers.get("x-routing-version"))
      versionHeaders.push(res.headers.get("x-routing-version")!);

    expect(res.status, JSON.stringify(res.body)).toBe(row.status);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
    const problem = res.body;
    expect(typeof problem).toBe("object");
    expect(problem.type).toEqual(expect.any(String));
    expect(problem.title).toEqual(expect.any(String));
    expect(problem.detail).toEqual(expect.any(String));
    expect(problem.status).toBe(row.status);
    expect(JSON.stringify(problem)).not.toMatch(/\bat .+\.(ts|js):\d+/);

    if (row.paths) {
      expect(Array.isArray(problem.errors), "errors must be an array").toBe(true);
      for (const e of problem.errors!) {
        expect(e.path).toEqual(expect.any(String));
        expect(e.message).toEqual(expect.any(String));
      }
      const named = problem.errors!.map((e) => e.path);
      for (const p of row.paths) expect(named, `errors should name ${p}`).toContain(p);
    } else if (row.status === 400 && problem.errors !== undefined) {
      expect(Array.isArray(problem.errors)).toBe(true);
    }
    if (row.method !== "GET" && row.status !== 401 && row.status !== 403 && !row.unrouted) {
      // Also a refused mutation says which version it saw (checked against the database below).
      expect(res.headers.get("x-routing-version")).toMatch(/^\d+$/);
    } else {
      // Not to callers who may not make it, nor for paths the app does not serve.
      expect(res.headers.get("x-routing-version")).toBeNull();
    }
    if (row.status === 401) expect(res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
    if (row.status === 503) expect(res.headers.get("retry-after")).toBeTruthy();
  });

  it("takes two Authorization headers for no caller at all, whichever comes first", async () => {
    for (const order of [
      [TOKENS.manager, "no-such-token-0123456789abcdef"],
      ["no-such-token-0123456789abcdef", TOKENS.manager],
      [TOKENS.manager, TOKENS.manager],
    ]) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request(`${h.url}/routes`, {
          method: "GET",
          // An array keeps both headers; an object (and fetch) would fold them into one.
          headers: [
            "host",
            new URL(h.url).host,
            ...order.flatMap((token) => ["authorization", `Bearer ${token}`]),
          ],
        });
        req.on("response", (res) => {
          res.resume();
          resolve(res.statusCode!);
        });
        req.on("error", reject);
        req.end();
      });
      expect(status, order.join(" then ")).toBe(401);
    }
    expect((await h.manager.get("/routes")).status).toBe(200);
  });

  it("names the stranded route when the only worker cannot be removed", async () => {
    const res = await h.manager.delete<Problem>(`/workers/${seed.worker.worker.id}`);
    expect(res.status).toBe(409);
    expect(res.body.routes).toEqual(expect.arrayContaining([seed.route.id]));
  });

  it("leaves the database byte for byte as it was", async () => {
    const after = await snapshot(h);
    for (const { table } of TABLES) expect(after[table], `table ${table}`).toBe(before[table]);
    const version = JSON.parse(before.routing_state!) as Array<{ version: unknown }>;
    for (const header of versionHeaders) expect(header).toBe(String(version[0]!.version));
    const read = await h.admin.get<RouteAnswer>(`/routes/${seed.route.id}`);
    expect(read.status).toBe(200);
    expect(read.body).toEqual(seed.route);
  });
});
