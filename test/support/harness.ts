import type { Database } from "../../src/db/database.js";
import { loadConfig } from "../../src/config.js";
import { startCoordinator, type Coordinator } from "../../src/coordinator.js";
import { createLogger } from "../../src/logger.js";
import { createTestDatabase, type TestDatabase } from "./database.js";

export const TOKENS = {
  manager: "manager-token-0123456789abcdef",
  registration: "registration-token-0123456789abcdef",
  admin: "admin-token-0123456789abcdef",
  secret: "token-secret-0123456789abcdef-0123456789",
  /** An Ed25519 seed (base64url): the access-token key, unless ACCESS_TOKEN_KEYS says others. */
  accessKey: "zedZ4IAMfzTuL4_I3wRr1nUYV_MYpF3v1IFb66TGM6k",
  /** The Backend.AI listener's API secret, where a test starts that listener. */
  backendai: "backendai-secret-0123456789abcdef",
};

export interface ApiAnswer<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** A small HTTP client for tests: JSON in, parsed JSON (or text) out, never throws on status. */
export class Api {
  constructor(
    readonly baseUrl: string,
    readonly token?: string,
  ) {}

  as(token: string | undefined): Api {
    return new Api(this.baseUrl, token);
  }

  async request<T = unknown>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<ApiAnswer<T>> {
    const init: RequestInit = { method, headers: { ...headers } };
    if (this.token) (init.headers as Record<string, string>).authorization = `Bearer ${this.token}`;
    if (body !== undefined) {
      (init.headers as Record<string, string>)["content-type"] ??= "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const res = await fetch(this.baseUrl + path, init);
    const text = await res.text();
    let parsed: unknown = text;
    if (text && /json/.test(res.headers.get("content-type") ?? "")) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  get<T = unknown>(path: string) {
    return this.request<T>("GET", path);
  }
  post<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>("POST", path, body, headers);
  }
  patch<T = unknown>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>("PATCH", path, body, headers);
  }
  delete<T = unknown>(path: string, headers?: Record<string, string>) {
    return this.request<T>("DELETE", path, undefined, headers);
  }
}

export interface TestInstance {
  coordinator: Coordinator;
  url: string;
  manager: Api;
  admin: Api;
  registration: Api;
  anonymous: Api;
  stop(): Promise<void>;
}

/** Starts a coordinator on port 0 over `database`, with known tokens and quiet logs. */
export async function startInstance(
  database: Database,
  env: Record<string, string> = {},
): Promise<TestInstance> {
  const config = loadConfig({
    PORT: "0",
    HOST: "127.0.0.1",
    LOG_LEVEL: "error",
    REAPER_CRON: "*/1 * * * * *",
    ...env,
  });
  const coordinator = await startCoordinator({
    config,
    secrets: {
      managerTokens: [TOKENS.manager],
      registrationTokens: [TOKENS.registration],
      adminTokens: [TOKENS.admin],
      tokenSecret: TOKENS.secret,
      accessTokenKeys: config.accessTokenKeys ?? [TOKENS.accessKey],
      ...(config.backendaiPort !== undefined
        ? { backendaiApiSecret: config.backendaiApiSecret ?? TOKENS.backendai }
        : {}),
    },
    logger: createLogger("error", !process.env.TEST_LOGS),
    database,
  });
  const url = coordinator.url;
  return {
    coordinator,
    url,
    manager: new Api(url, TOKENS.manager),
    admin: new Api(url, TOKENS.admin),
    registration: new Api(url, TOKENS.registration),
    anonymous: new Api(url),
    stop: () => coordinator.stop(),
  };
}

/** One database and one instance on it, for the common case. */
export async function startHarness(
  env: Record<string, string> = {},
): Promise<TestInstance & { testDb: TestDatabase; database: Database; close(): Promise<void> }> {
  const testDb = await createTestDatabase();
  const database = await testDb.open();
  const instance = await startInstance(database, env);
  return {
    ...instance,
    testDb,
    database,
    close: async () => {
      await instance.stop();
      await testDb.drop();
    },
  };
}

/** Polls `check` until it returns a truthy value or the deadline passes. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  timeoutMs = 10_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 5;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(delay * 2, 100);
  }
}
