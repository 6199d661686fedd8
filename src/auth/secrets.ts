import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Config } from "../config.js";

export interface Secrets {
  managerTokens: readonly string[];
  registrationTokens: readonly string[];
  adminTokens: readonly string[];
  tokenSecret: string;
}

interface StoredSecrets {
  manager_token?: string;
  registration_token?: string;
  admin_token?: string;
  token_secret?: string;
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
  let stored: StoredSecrets = {};
  if (existsSync(file)) stored = JSON.parse(readFileSync(file, "utf8")) as StoredSecrets;
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
  };
  if (generated.length > 0) {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, JSON.stringify(stored, null, 2) + "\n", { mode: 0o600 });
    chmodSync(file, 0o600);
  }
  return { secrets, generated };
}
