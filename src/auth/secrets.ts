import { randomBytes } from "node:crypto";
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { ConfigError, type Config } from "../config.js";

export interface Secrets {
  managerTokens: readonly string[];
  registrationTokens: readonly string[];
  adminTokens: readonly string[];
  tokenSecret: string;
  /** Ed25519 seeds (base64url) of the access-token keys; the first signs, all are published. */
  accessTokenKeys: readonly string[];
  /** The Backend.AI listener's API secret; only where that listener is enabled. */
  backendaiApiSecret?: string;
}

interface StoredSecrets {
  manager_token?: string;
  registration_token?: string;
  admin_token?: string;
  token_secret?: string;
  access_token_key?: string;
  backendai_api_secret?: string;
}

const FILE = "secrets.json";

/**
 * Tokens and the token secret: from the settings where given, else generated once into
 * `DATA_DIR/secrets.json` (mode 0600) and reused at every later start. `generated` names what this
 * start created, so that main can show it once.
 */
export function resolveSecrets(config: Config): {
  secrets: Secrets;
  generated: Array<{ setting: string; value: string }>;
} {
  const file = path.resolve(config.dataDir, FILE);
  const stored = existsSync(file) ? readStored(file) : {};
  const generated: Array<{ setting: string; value: string }> = [];
  const take = (
    configured: readonly string[] | string | undefined,
    key: keyof StoredSecrets,
    setting: string,
  ): string => {
    if (stored[key]) return stored[key];
    const value = randomBytes(32).toString("base64url");
    stored[key] = value;
    if (configured === undefined) generated.push({ setting, value });
    return value;
  };
  const secrets: Secrets = {
    managerTokens: config.managerTokens ?? [take(undefined, "manager_token", "MANAGER_TOKENS")],
    registrationTokens: config.registrationTokens ?? [
      take(undefined, "registration_token", "REGISTRATION_TOKENS"),
    ],
    adminTokens: config.adminTokens ?? [take(undefined, "admin_token", "ADMIN_TOKENS")],
    tokenSecret: config.tokenSecret ?? take(undefined, "token_secret", "TOKEN_SECRET"),
    // 32 random bytes are an Ed25519 private key (its seed), which is what take() makes.
    accessTokenKeys: config.accessTokenKeys ?? [
      take(undefined, "access_token_key", "ACCESS_TOKEN_KEYS"),
    ],
  };
  if (config.backendaiPort !== undefined) {
    secrets.backendaiApiSecret =
      config.backendaiApiSecret ?? take(undefined, "backendai_api_secret", "BACKENDAI_API_SECRET");
  }
  if (generated.length > 0) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeWhole(file, JSON.stringify(stored, null, 2) + "\n");
  }
  return { secrets, generated };
}

/**
 * Writes `text` to `file` whole or not at all: into a new file of mode 0600 beside it (created
 * exclusively, so never one left by someone else), flushed, renamed over `file`, and the rename
 * flushed with its directory. A start-up killed while writing leaves the old file, not half of one;
 * a failed write leaves no copy of the secrets behind.
 */
function writeWhole(file: string, text: string): void {
  const partial = `${file}.${process.pid}.tmp`;
  rmSync(partial, { force: true });
  try {
    writeFileSync(partial, text, { mode: 0o600, flag: "wx", flush: true });
    renameSync(partial, file);
  } catch (error) {
    rmSync(partial, { force: true });
    throw error;
  }
  const dir = openSync(path.dirname(file), "r");
  try {
    fsyncSync(dir);
  } finally {
    closeSync(dir);
  }
}

/**
 * The stored secrets, or a ConfigError that names the file and never its content: a parse
 * error's message would quote the tokens around the broken spot.
 */
function readStored(file: string): StoredSecrets {
  const refuse = (why: string) =>
    new ConfigError([
      `${file} ${why}; fix or remove it (removing it makes the next start generate new tokens, a new TOKEN_SECRET and a new access-token key, which invalidates every worker token and access token)`,
    ]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    if (error instanceof SyntaxError) throw refuse("is not valid JSON");
    throw refuse(`cannot be read (${(error as NodeJS.ErrnoException).code ?? "error"})`);
  }
  const keys: Array<keyof StoredSecrets> = [
    "manager_token",
    "registration_token",
    "admin_token",
    "token_secret",
    "access_token_key",
    "backendai_api_secret",
  ];
  const valid =
    typeof parsed === "object" &&
    parsed !== null &&
    !Array.isArray(parsed) &&
    keys.every((k) => {
      const value = (parsed as Record<string, unknown>)[k];
      return value === undefined || (typeof value === "string" && value.length > 0);
    });
  if (!valid) throw refuse("does not hold the generated tokens as text");
  return parsed as StoredSecrets;
}
