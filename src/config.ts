import Joi from "joi";
import cron from "node-cron";

/** Every setting of the coordinator, validated once at start-up. See README "Settings". */
export interface Config {
  readonly port: number;
  readonly host: string;
  readonly databaseUrl: string | undefined;
  readonly dataDir: string;
  readonly managerTokens: readonly string[] | undefined;
  readonly registrationTokens: readonly string[] | undefined;
  readonly adminTokens: readonly string[] | undefined;
  readonly tokenSecret: string | undefined;
  /** Ed25519 private keys (32-byte seeds, base64url); the first signs access tokens. */
  readonly accessTokenKeys: readonly string[] | undefined;
  readonly publicStatus: boolean;
  readonly heartbeatIntervalS: number;
  readonly workerLostAfterS: number;
  readonly workerForgetAfterS: number;
  readonly reaperCron: string;
  readonly changelogRetention: number;
  readonly logLevel: string;
  /** The Backend.AI-compatible listener's port; undefined: no such listener. */
  readonly backendaiPort: number | undefined;
  readonly backendaiHost: string;
  readonly backendaiApiSecret: string | undefined;
  readonly backendaiAllowUnauthenticatedConf: boolean;
  /** The base URL browsers reach that listener at (answers of /status and /add). */
  readonly backendaiAdvertiseUrl: string | undefined;
  /** Open connections (HTTP and streams) this instance holds at most; more are refused. */
  readonly maxConnections: number;
  /** A connection must finish sending a request's headers this soon after it opened or began. */
  readonly headersTimeoutS: number;
  /** A request must arrive whole (headers and body) this soon. */
  readonly requestTimeoutS: number;
  /** A connection with no request under way (HTTP, not a stream) is closed after this long. */
  readonly idleTimeoutS: number;
  /** How often the event-loop delay behind `nodejs_eventloop_lag_*` is sampled, in ms. */
  readonly eventLoopResolutionMs: number;
}

const tokenList = Joi.string()
  .trim()
  .pattern(/^[^\s,]{16,}(,[^\s,]{16,})*$/)
  .message("must be a comma-separated list of tokens of at least 16 characters, without spaces");

const schema = Joi.object({
  PORT: Joi.number().integer().min(0).max(65535).default(6030),
  HOST: Joi.string().trim().min(1).default("0.0.0.0"),
  DATABASE_URL: Joi.string()
    .trim()
    .pattern(/^postgres(ql)?:\/\//)
    .message("must be a postgres:// or postgresql:// URL"),
  DATA_DIR: Joi.string().trim().min(1).default("./data"),
  MANAGER_TOKENS: tokenList,
  REGISTRATION_TOKENS: tokenList,
  ADMIN_TOKENS: tokenList,
  TOKEN_SECRET: Joi.string().min(32).message("must be at least 32 characters"),
  ACCESS_TOKEN_KEYS: Joi.string()
    .trim()
    .pattern(/^[A-Za-z0-9_-]{43}(,[A-Za-z0-9_-]{43})*$/)
    .message(
      "must be a comma-separated list of Ed25519 private keys, each 32 random bytes in base64url (43 characters)",
    ),
  PUBLIC_STATUS: Joi.boolean().truthy("1").falsy("0").default(false),
  HEARTBEAT_INTERVAL_S: Joi.number().integer().min(1).max(3600).default(10),
  WORKER_LOST_AFTER_S: Joi.number().integer().min(1).default(30),
  WORKER_FORGET_AFTER_S: Joi.number().integer().min(1).default(86400),
  REAPER_CRON: Joi.string()
    .default("*/5 * * * * *")
    .custom((value: string, helpers) => {
      if (!cron.validate(value))
        return helpers.message({ custom: "is not a valid cron expression" });
      return value;
    }),
  CHANGELOG_RETENTION: Joi.number().integer().min(1).default(100000),
  BACKENDAI_PORT: Joi.number().integer().min(0).max(65535),
  BACKENDAI_HOST: Joi.string().trim().min(1),
  BACKENDAI_API_SECRET: Joi.string().min(16).message("must be at least 16 characters"),
  BACKENDAI_ALLOW_UNAUTHENTICATED_CONF: Joi.boolean().truthy("1").falsy("0").default(false),
  BACKENDAI_ADVERTISE_URL: Joi.string()
    .trim()
    .uri({ scheme: ["http", "https"] })
    .pattern(/[^/]$/)
    .message("must be an http:// or https:// URL without a trailing slash"),
  LOG_LEVEL: Joi.string()
    .valid("error", "warn", "info", "http", "verbose", "debug", "silly")
    .default("info"),
  MAX_CONNECTIONS: Joi.number().integer().min(1).default(10000),
  HTTP_HEADERS_TIMEOUT_S: Joi.number().integer().min(1).max(3600).default(20),
  HTTP_REQUEST_TIMEOUT_S: Joi.number().integer().min(1).max(3600).default(60),
  HTTP_IDLE_TIMEOUT_S: Joi.number().integer().min(1).max(3600).default(65),
  EVENT_LOOP_RESOLUTION_MS: Joi.number().integer().min(1).max(1000).default(20),
}).unknown(true);

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

function splitTokens(raw: string | undefined): string[] | undefined {
  return raw === undefined ? undefined : raw.split(",").map((t) => t.trim());
}

/** Validates the environment; throws ConfigError listing every bad setting. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(
    Object.entries(env).filter(([, v]) => v !== undefined && v !== ""),
  );
  const { error, value } = schema.validate(present, { abortEarly: false, convert: true });
  if (error) {
    throw new ConfigError(
      error.details.map((d) => {
        const name = String(d.path[0] ?? d.context?.key ?? "setting");
        return `invalid setting ${name}: ${d.message.replace(/^"[^"]*" /, "")}`;
      }),
    );
  }
  const v = value as Record<string, unknown>;
  const roles = {
    MANAGER_TOKENS: splitTokens(v.MANAGER_TOKENS as string | undefined),
    REGISTRATION_TOKENS: splitTokens(v.REGISTRATION_TOKENS as string | undefined),
    ADMIN_TOKENS: splitTokens(v.ADMIN_TOKENS as string | undefined),
  };
  const shared = sharedTokenSettings(roles);
  if (shared.length > 0) {
    throw new ConfigError([
      `invalid settings ${shared.join(" and ")}: they share a token; give each role tokens of its own`,
    ]);
  }
  return Object.freeze({
    port: v.PORT as number,
    host: v.HOST as string,
    databaseUrl: v.DATABASE_URL as string | undefined,
    dataDir: v.DATA_DIR as string,
    managerTokens: roles.MANAGER_TOKENS,
    registrationTokens: roles.REGISTRATION_TOKENS,
    adminTokens: roles.ADMIN_TOKENS,
    tokenSecret: v.TOKEN_SECRET as string | undefined,
    accessTokenKeys: splitTokens(v.ACCESS_TOKEN_KEYS as string | undefined),
    publicStatus: v.PUBLIC_STATUS as boolean,
    heartbeatIntervalS: v.HEARTBEAT_INTERVAL_S as number,
    workerLostAfterS: v.WORKER_LOST_AFTER_S as number,
    workerForgetAfterS: v.WORKER_FORGET_AFTER_S as number,
    reaperCron: v.REAPER_CRON as string,
    changelogRetention: v.CHANGELOG_RETENTION as number,
    logLevel: v.LOG_LEVEL as string,
    backendaiPort: v.BACKENDAI_PORT as number | undefined,
    backendaiHost: (v.BACKENDAI_HOST as string | undefined) ?? (v.HOST as string),
    backendaiApiSecret: v.BACKENDAI_API_SECRET as string | undefined,
    backendaiAllowUnauthenticatedConf: v.BACKENDAI_ALLOW_UNAUTHENTICATED_CONF as boolean,
    backendaiAdvertiseUrl: v.BACKENDAI_ADVERTISE_URL as string | undefined,
    maxConnections: v.MAX_CONNECTIONS as number,
    headersTimeoutS: v.HTTP_HEADERS_TIMEOUT_S as number,
    requestTimeoutS: v.HTTP_REQUEST_TIMEOUT_S as number,
    idleTimeoutS: v.HTTP_IDLE_TIMEOUT_S as number,
    eventLoopResolutionMs: v.EVENT_LOOP_RESOLUTION_MS as number,
  });
}

/**
 * The token settings that hold a token another one holds too. A token in two roles would be
 * taken for one of them only (whichever is checked first), never the one its holder was meant to
 * have: refusing it keeps every caller's power what the settings say.
 */
function sharedTokenSettings(roles: Record<string, string[] | undefined>): string[] {
  const owner = new Map<string, string>();
  const shared = new Set<string>();
  for (const [setting, tokens] of Object.entries(roles)) {
    for (const token of new Set(tokens ?? [])) {
      const first = owner.get(token);
      if (first !== undefined && first !== setting) {
        shared.add(first);
        shared.add(setting);
      }
      owner.set(token, setting);
    }
  }
  return [...shared];
}
