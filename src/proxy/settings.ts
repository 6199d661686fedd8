import { hostname } from "node:os";
import path from "node:path";
import Joi from "joi";
import proxyaddr from "proxy-addr";
import type { RouteMode } from "../client/route.js";
import type { WorkerRegistration } from "../client/registration.js";

/** The protocols this worker can serve; h2 and grpc routes are refused (docs/api.md, "The proxy worker"). */
export const SERVED_PROTOCOLS = ["http", "tcp"] as const;
export type ServedProtocol = (typeof SERVED_PROTOCOLS)[number];

/** Everything a proxy worker runs with, read once from its environment. */
export interface ProxySettings {
  coordinatorUrl: string;
  registrationToken: string;
  name: string;
  advertisedHost: string;
  bindHost: string;
  frontendMode: "port" | "wildcard";
  portRange: [number, number] | null;
  wildcardDomain: string | null;
  wildcardTrafficPort: number | null;
  protocols: ServedProtocol[];
  modes: RouteMode[];
  labels: Record<string, string>;
  capacity: number | null;
  dedicated: boolean;
  /** 0 means any free port (tests); the bound port is in the worker's `addresses`. */
  opsPort: number;
  trustedProxies: string[];
  drainS: number;
  /** A client that has not sent a request's headers within this is answered 408 and closed. */
  headersTimeoutS: number;
  /** How often the event-loop delay of `nodejs_eventloop_lag_*` is sampled, in ms. */
  eventLoopResolutionMs: number;
  dataDir: string;
  tls: { certFile: string; keyFile: string } | null;
  logLevel: string;
}

export type SettingsParse =
  { ok: true; settings: ProxySettings } | { ok: false; problems: string[] };

const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const DOMAIN = /^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const port = Joi.number().integer().min(1).max(65535);

const schema = Joi.object({
  COORDINATOR_URL: Joi.string()
    .uri({ scheme: ["http", "https"] })
    .default("http://127.0.0.1:6030")
    .description("the coordinator's HTTP base URL"),
  REGISTRATION_TOKEN: Joi.string()
    .required()
    .description("a registration token of the coordinator (required)"),
  WORKER_NAME: Joi.string()
    .pattern(DNS_LABEL)
    .required()
    .messages({
      "string.pattern.base": "WORKER_NAME: 1-63 characters of a-z, 0-9 and - (a DNS label)",
    })
    .description("DNS label, unique in the fleet (required)"),
  ADVERTISED_HOST: Joi.string()
    .hostname()
    .description(
      "the host in route URLs (default BIND_HOST, or the host name when binding all addresses)",
    ),
  BIND_HOST: Joi.string().ip().default("0.0.0.0").description("the address every listener binds"),
  FRONTEND_MODE: Joi.string()
    .valid("port", "wildcard")
    .description("port or wildcard (default wildcard when WILDCARD_DOMAIN is set, else port)"),
  PORT_RANGE: Joi.string()
    .pattern(/^\d{1,5}:\d{1,5}$/)
    .description("first:last, the traffic ports (required in port mode)"),
  WILDCARD_DOMAIN: Joi.string()
    .lowercase()
    .pattern(DOMAIN)
    .description("routes are <subdomain>.<domain> (required in wildcard mode)"),
  WILDCARD_TRAFFIC_PORT: port.description(
    "the one traffic port of wildcard mode (default 443 with TLS, else 80)",
  ),
  PROTOCOLS: Joi.string()
    .pattern(/^[a-z0-9]+(,[a-z0-9]+)*$/)
    .description(
      "comma-separated: http, tcp (default http,tcp in port mode, http in wildcard mode)",
    ),
  MODES: Joi.string()
    .pattern(/^[a-z]+(,[a-z]+)*$/)
    .description("comma-separated: interactive, inference (default both)"),
  LABELS: Joi.string()
    .allow("")
    .description("key=value pairs separated by commas, as in POST /workers/register"),
  CAPACITY: Joi.number()
    .integer()
    .min(0)
    .description("most routes placed on this worker (default no limit)"),
  DEDICATED: Joi.boolean()
    .default(false)
    .description("true: take only routes whose selector names this worker's labels"),
  OPS_PORT: Joi.number()
    .integer()
    .min(0)
    .max(65535)
    .default(6031)
    .description("port of /healthz, /readyz, /metrics on BIND_HOST (0: any free port)"),
  TRUSTED_PROXIES: Joi.string()
    .allow("")
    .default("")
    .description("comma-separated addresses/CIDRs whose X-Forwarded-* are believed"),
  DRAIN_S: Joi.number()
    .min(0)
    .max(3600)
    .default(30)
    .description("seconds departed routes' tunnels and a stopping worker's connections get"),
  HTTP_HEADERS_TIMEOUT_S: Joi.number()
    .min(1)
    .max(3600)
    .default(20)
    .description("seconds a client gets to send a request's headers (then 408, closed)"),
  EVENT_LOOP_RESOLUTION_MS: Joi.number()
    .integer()
    .min(1)
    .max(1000)
    .default(20)
    .description("ms between samples of the event-loop delay in nodejs_eventloop_lag_*"),
  DATA_DIR: Joi.string().description(
    "keeps the worker token, access keys and last applied table (default data/worker-<name>)",
  ),
  TLS_CERT_FILE: Joi.string().description("PEM certificate: serve HTTPS/WSS (with TLS_KEY_FILE)"),
  TLS_KEY_FILE: Joi.string().description("PEM private key of TLS_CERT_FILE"),
  LOG_LEVEL: Joi.string()
    .valid("error", "warn", "info", "debug")
    .default("info")
    .description("error, warn, info or debug (JSON lines on stdout)"),
}).unknown(true);

/** One setting of the worker: its environment variable, what it means, its default if fixed. */
export interface SettingVariable {
  readonly name: string;
  readonly description: string;
  readonly defaultValue?: string;
}

interface DescribedKey {
  flags?: { description?: string; default?: unknown };
}

/** Every setting the worker reads, in the order of docs/worker.md's table. */
export const SETTING_VARIABLES: readonly SettingVariable[] = Object.entries(
  (schema.describe() as { keys: Record<string, DescribedKey> }).keys,
).map(([name, key]) => ({
  name,
  description: key.flags?.description ?? "",
  ...(key.flags?.default === undefined || key.flags.default === ""
    ? {}
    : { defaultValue: String(key.flags.default) }),
}));

interface RawSettings {
  COORDINATOR_URL: string;
  REGISTRATION_TOKEN: string;
  WORKER_NAME: string;
  ADVERTISED_HOST?: string;
  BIND_HOST: string;
  FRONTEND_MODE?: "port" | "wildcard";
  PORT_RANGE?: string;
  WILDCARD_DOMAIN?: string;
  WILDCARD_TRAFFIC_PORT?: number;
  PROTOCOLS?: string;
  MODES?: string;
  LABELS?: string;
  CAPACITY?: number;
  DEDICATED: boolean;
  OPS_PORT: number;
  TRUSTED_PROXIES: string;
  DRAIN_S: number;
  HTTP_HEADERS_TIMEOUT_S: number;
  EVENT_LOOP_RESOLUTION_MS: number;
  DATA_DIR?: string;
  TLS_CERT_FILE?: string;
  TLS_KEY_FILE?: string;
  LOG_LEVEL: string;
}

/**
 * Reads a proxy worker's settings from its environment (docs/api.md, "The proxy worker"). Every
 * problem is reported, not just the first; empty variables count as unset.
 */
export function parseProxySettings(
  env: Readonly<Record<string, string | undefined>>,
): SettingsParse {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ""),
  );
  const { error, value } = schema.validate(present, { abortEarly: false, convert: true });
  if (error) return { ok: false, problems: error.details.map((detail) => detail.message) };
  const raw = value as RawSettings;
  const problems: string[] = [];

  const mode = raw.FRONTEND_MODE ?? (raw.WILDCARD_DOMAIN === undefined ? "port" : "wildcard");
  let portRange: [number, number] | null = null;
  if (mode === "port") {
    if (raw.PORT_RANGE === undefined) problems.push("PORT_RANGE: needed in port mode (first:last)");
    else {
      const [first, last] = raw.PORT_RANGE.split(":").map(Number) as [number, number];
      if (first < 1 || last > 65535 || first > last) {
        problems.push(
          `PORT_RANGE: first:last with 1 <= first <= last <= 65535, not ${raw.PORT_RANGE}`,
        );
      } else portRange = [first, last];
    }
  } else if (raw.WILDCARD_DOMAIN === undefined) {
    problems.push("WILDCARD_DOMAIN: needed in wildcard mode");
  }

  const tls = readTls(raw, problems);
  const protocols = readList(
    raw.PROTOCOLS,
    "PROTOCOLS",
    SERVED_PROTOCOLS,
    mode === "port" ? ["http", "tcp"] : ["http"],
    problems,
  );
  if (mode === "wildcard" && protocols.includes("tcp")) {
    problems.push("PROTOCOLS: tcp routes are served in port mode only");
  }
  const modes = readList(
    raw.MODES,
    "MODES",
    ["interactive", "inference"] as const,
    ["interactive", "inference"],
    problems,
  );
  const trustedProxies = raw.TRUSTED_PROXIES.split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  try {
    proxyaddr.compile(trustedProxies);
  } catch (cause) {
    problems.push(`TRUSTED_PROXIES: ${cause instanceof Error ? cause.message : String(cause)}`);
  }
  const labels = readLabels(raw.LABELS ?? "", problems);

  if (problems.length > 0) return { ok: false, problems };
  const unspecified = raw.BIND_HOST === "0.0.0.0" || raw.BIND_HOST === "::";
  return {
    ok: true,
    settings: {
      coordinatorUrl: raw.COORDINATOR_URL,
      registrationToken: raw.REGISTRATION_TOKEN,
      name: raw.WORKER_NAME,
      advertisedHost: raw.ADVERTISED_HOST ?? (unspecified ? hostname() : raw.BIND_HOST),
      bindHost: raw.BIND_HOST,
      frontendMode: mode,
      portRange,
      wildcardDomain: mode === "wildcard" ? (raw.WILDCARD_DOMAIN ?? null) : null,
      wildcardTrafficPort:
        mode === "wildcard" ? (raw.WILDCARD_TRAFFIC_PORT ?? (tls === null ? 80 : 443)) : null,
      protocols,
      modes,
      labels,
      capacity: raw.CAPACITY ?? null,
      dedicated: raw.DEDICATED,
      opsPort: raw.OPS_PORT,
      trustedProxies,
      drainS: raw.DRAIN_S,
      headersTimeoutS: raw.HTTP_HEADERS_TIMEOUT_S,
      eventLoopResolutionMs: raw.EVENT_LOOP_RESOLUTION_MS,
      dataDir: path.resolve(raw.DATA_DIR ?? path.join("data", `worker-${raw.WORKER_NAME}`)),
      tls,
      logLevel: raw.LOG_LEVEL,
    },
  };
}

/** The registration body these settings stand for. */
export function registrationOf(settings: ProxySettings): WorkerRegistration {
  const registration: WorkerRegistration = {
    name: settings.name,
    advertised_host: settings.advertisedHost,
    frontend_mode: settings.frontendMode,
    protocols: settings.protocols,
    modes: settings.modes,
    tls: settings.tls !== null,
    labels: settings.labels,
    dedicated: settings.dedicated,
    capacity: settings.capacity,
  };
  if (settings.frontendMode === "port") registration.port_range = settings.portRange;
  else {
    registration.wildcard_domain = settings.wildcardDomain;
    registration.wildcard_traffic_port = settings.wildcardTrafficPort;
  }
  return registration;
}

function readTls(raw: RawSettings, problems: string[]): ProxySettings["tls"] {
  if (raw.TLS_CERT_FILE === undefined && raw.TLS_KEY_FILE === undefined) return null;
  if (raw.TLS_CERT_FILE === undefined || raw.TLS_KEY_FILE === undefined) {
    problems.push("TLS_CERT_FILE and TLS_KEY_FILE: set both or neither");
    return null;
  }
  return { certFile: raw.TLS_CERT_FILE, keyFile: raw.TLS_KEY_FILE };
}

function readList<T extends string>(
  text: string | undefined,
  name: string,
  allowed: readonly T[],
  fallback: T[],
  problems: string[],
): T[] {
  if (text === undefined) return fallback;
  const items = text.split(",");
  const unknown = items.filter((item) => !allowed.some((candidate) => candidate === item));
  if (unknown.length > 0) {
    problems.push(`${name}: a comma-separated list of ${allowed.join(", ")}, not "${text}"`);
    return fallback;
  }
  return allowed.filter((candidate) => items.includes(candidate));
}

function readLabels(text: string, problems: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const pair of text.split(",").filter((item) => item !== "")) {
    const separator = pair.indexOf("=");
    if (separator <= 0) problems.push(`LABELS: key=value pairs separated by commas, not "${pair}"`);
    else labels[pair.slice(0, separator).trim()] = pair.slice(separator + 1).trim();
  }
  return labels;
}
