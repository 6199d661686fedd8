import { parseArgs } from "node:util";
import type { WorkerRegistration } from "./registration.js";
import { ROUTE_MODES, ROUTE_PROTOCOLS } from "./route.js";

export const USAGE = `usage: npm run worker -- --name <name> (--port-range <first>:<last> | --wildcard-domain <domain>)
  [--coordinator <url>]         coordinator HTTP base URL (default http://127.0.0.1:6030)
  [--token <token>]             registration token (default: env REGISTRATION_TOKEN)
  [--worker-token <token>]      this worker's token from an earlier registration, needed to
                                register a name the coordinator knows (default: env WORKER_TOKEN)
  [--host <host>]               advertised host of this worker (default 127.0.0.1)
  [--wildcard-domain <domain>]  serve routes at <subdomain>.<domain> (frontend mode "wildcard")
  [--traffic-port <port>]       wildcard traffic port (default 443 with --tls, else 80)
  [--protocols http,tcp,...]    protocols served (http, tcp, grpc, h2; default http)
  [--modes interactive,...]     modes served (interactive, inference; default both)
  [--labels k=v,k2=v2]          labels routes may select
  [--dedicated]                 take only routes whose selector names this worker's labels
  [--capacity <n>]              most routes placed on this worker
  [--tls]                       this worker terminates TLS`;

export interface WorkerCliConfig {
  coordinatorUrl: string;
  registrationToken: string;
  workerToken?: string;
  registration: WorkerRegistration;
}

export type WorkerCliParse =
  { ok: true; config: WorkerCliConfig } | { ok: false; help: boolean; problems: string[] };

// The coordinator's rule for worker names: a DNS label.
const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

const FLAGS = {
  name: { type: "string" },
  "port-range": { type: "string" },
  coordinator: { type: "string", default: "http://127.0.0.1:6030" },
  token: { type: "string" },
  "worker-token": { type: "string" },
  host: { type: "string", default: "127.0.0.1" },
  "wildcard-domain": { type: "string" },
  "traffic-port": { type: "string" },
  protocols: { type: "string" },
  modes: { type: "string" },
  labels: { type: "string" },
  dedicated: { type: "boolean", default: false },
  capacity: { type: "string" },
  tls: { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
} as const;

function readFlags(argv: readonly string[]) {
  return parseArgs({ args: [...argv], strict: true, allowPositionals: false, options: FLAGS })
    .values;
}

type CliFlags = ReturnType<typeof readFlags>;

/** Reads the worker CLI's arguments; every problem is collected, not just the first. */
export function parseWorkerCliArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): WorkerCliParse {
  let values: CliFlags;
  try {
    values = readFlags(argv);
  } catch (error) {
    const problem = error instanceof Error ? error.message : String(error);
    return { ok: false, help: false, problems: [problem] };
  }
  if (values.help) return { ok: false, help: true, problems: [] };

  const problems: string[] = [];
  const name = values.name ?? "";
  if (!NAME_PATTERN.test(name)) problems.push("--name: 1-63 characters of a-z, 0-9 and -");

  const registrationToken = values.token ?? env.REGISTRATION_TOKEN ?? "";
  if (registrationToken === "")
    problems.push("--token or REGISTRATION_TOKEN: a registration token is needed");

  if (!isHttpUrl(values.coordinator)) problems.push("--coordinator: an http(s) URL");
  if (values.host === "") problems.push("--host: must not be empty");

  const wildcardDomain = values["wildcard-domain"];
  const portRange =
    values["port-range"] === undefined ? undefined : parsePortRange(values["port-range"], problems);
  if (wildcardDomain === undefined && values["port-range"] === undefined) {
    problems.push("--port-range or --wildcard-domain: the worker needs one way to expose routes");
  }
  if (wildcardDomain === "") problems.push("--wildcard-domain: must not be empty");
  const trafficPort =
    values["traffic-port"] === undefined
      ? undefined
      : parsePort(values["traffic-port"], "--traffic-port", problems);
  if (trafficPort !== undefined && wildcardDomain === undefined) {
    problems.push("--traffic-port: only with --wildcard-domain");
  }

  const protocols =
    values.protocols === undefined
      ? undefined
      : parseList(values.protocols, "--protocols", ROUTE_PROTOCOLS, problems);
  const modes =
    values.modes === undefined
      ? undefined
      : parseList(values.modes, "--modes", ROUTE_MODES, problems);
  const labels = values.labels === undefined ? undefined : parseLabels(values.labels, problems);
  const capacity =
    values.capacity === undefined ? undefined : parseCount(values.capacity, problems);

  if (problems.length > 0) return { ok: false, help: false, problems };

  const registration: WorkerRegistration = {
    name,
    advertised_host: values.host,
    frontend_mode: wildcardDomain === undefined ? "port" : "wildcard",
    tls: values.tls,
    dedicated: values.dedicated,
  };
  if (portRange !== undefined) registration.port_range = portRange;
  if (wildcardDomain !== undefined) registration.wildcard_domain = wildcardDomain;
  if (trafficPort !== undefined) registration.wildcard_traffic_port = trafficPort;
  if (protocols !== undefined) registration.protocols = protocols;
  if (modes !== undefined) registration.modes = modes;
  if (labels !== undefined) registration.labels = labels;
  if (capacity !== undefined) registration.capacity = capacity;
  const workerToken = values["worker-token"] ?? env.WORKER_TOKEN;
  return {
    ok: true,
    config: {
      coordinatorUrl: values.coordinator,
      registrationToken,
      ...(workerToken ? { workerToken } : {}),
      registration,
    },
  };
}

function isHttpUrl(text: string): boolean {
  if (!URL.canParse(text)) return false;
  const protocol = new URL(text).protocol;
  return protocol === "http:" || protocol === "https:";
}

function parsePort(text: string, flag: string, problems: string[]): number | undefined {
  const port = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) {
    problems.push(`${flag}: a port number 1-65535, not "${text}"`);
    return undefined;
  }
  return port;
}

function parsePortRange(text: string, problems: string[]): [number, number] | undefined {
  const match = /^(\d+):(\d+)$/.exec(text);
  if (match === null || match[1] === undefined || match[2] === undefined) {
    problems.push(`--port-range: <first>:<last>, not "${text}"`);
    return undefined;
  }
  const first = parsePort(match[1], "--port-range", problems);
  const last = parsePort(match[2], "--port-range", problems);
  if (first === undefined || last === undefined) return undefined;
  if (first > last) {
    problems.push(`--port-range: first port ${first} is above last port ${last}`);
    return undefined;
  }
  return [first, last];
}

function parseList<T extends string>(
  text: string,
  flag: string,
  allowed: readonly T[],
  problems: string[],
): T[] | undefined {
  const items = text.split(",").map((item) => item.trim());
  const chosen = allowed.filter((candidate) => items.includes(candidate));
  const unknown = items.filter((item) => !allowed.some((candidate) => candidate === item));
  if (unknown.length > 0 || chosen.length === 0) {
    problems.push(`${flag}: a comma-separated list of ${allowed.join(", ")}, not "${text}"`);
    return undefined;
  }
  return chosen;
}

function parseLabels(text: string, problems: string[]): Record<string, string> | undefined {
  const labels: Record<string, string> = {};
  for (const pair of text.split(",").filter((item) => item !== "")) {
    const separator = pair.indexOf("=");
    if (separator <= 0) {
      problems.push(`--labels: key=value pairs separated by commas, not "${pair}"`);
      return undefined;
    }
    labels[pair.slice(0, separator).trim()] = pair.slice(separator + 1).trim();
  }
  return labels;
}

function parseCount(text: string, problems: string[]): number | undefined {
  if (!/^\d+$/.test(text)) {
    problems.push(`--capacity: a whole number, not "${text}"`);
    return undefined;
  }
  return Number(text);
}
