import { createHmac, hash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";

export type Role = "manager" | "registration" | "admin" | "worker";

export type Principal =
  { role: "manager" | "registration" | "admin" } | { role: "worker"; workerId: string };

const WORKER_PREFIX = "wt1.";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Whether `token` has a worker token's form (says nothing of whether it is valid). */
export const hasWorkerTokenForm = (token: string): boolean => token.startsWith(WORKER_PREFIX);

const digest = (value: string): Buffer => hash("sha256", value, "buffer");

/**
 * Knows every token of every role. Configured tokens are kept only as SHA-256 digests and
 * compared in constant time against every one of them, so neither the answer's time nor a log
 * reveals which token, or how much of one, matched.
 */
export class TokenRegistry {
  private readonly known: Array<{ hash: Buffer; role: "manager" | "registration" | "admin" }>;

  constructor(
    tokens: {
      manager: readonly string[];
      registration: readonly string[];
      admin: readonly string[];
    },
    private readonly secret: string,
  ) {
    this.known = [
      ...tokens.manager.map((t) => ({ hash: digest(t), role: "manager" as const })),
      ...tokens.registration.map((t) => ({ hash: digest(t), role: "registration" as const })),
      ...tokens.admin.map((t) => ({ hash: digest(t), role: "admin" as const })),
    ];
  }

  /** The worker token for `workerId`: its id and an HMAC of it under the token secret. */
  workerToken(workerId: string): string {
    return `${WORKER_PREFIX}${workerId}.${this.sign(workerId)}`;
  }

  identify(token: string): Principal | undefined {
    if (token.startsWith(WORKER_PREFIX)) return this.identifyWorker(token);
    const hash = digest(token);
    let match: Principal | undefined;
    for (const k of this.known) {
      // No early exit: every comparison runs whatever matched before.
      if (timingSafeEqual(hash, k.hash) && !match) match = { role: k.role };
    }
    return match;
  }

  private identifyWorker(token: string): Principal | undefined {
    const rest = token.slice(WORKER_PREFIX.length);
    const dot = rest.indexOf(".");
    if (dot < 0) return undefined;
    const workerId = rest.slice(0, dot);
    if (!UUID.test(workerId)) return undefined;
    const given = digest(rest.slice(dot + 1));
    const expected = digest(this.sign(workerId));
    return timingSafeEqual(given, expected) ? { role: "worker", workerId } : undefined;
  }

  private sign(workerId: string): string {
    return createHmac("sha256", this.secret).update(`worker:${workerId}`).digest("base64url");
  }
}

/**
 * The request's one Authorization header. Node keeps the first of several and drops the rest; a
 * proxy in front may keep the last, so a request with two names no caller at all.
 */
export function authorizationOf(req: IncomingMessage): string | undefined {
  let header: string | undefined;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.length !== 13 || raw[i]!.toLowerCase() !== "authorization") continue;
    if (header !== undefined) return undefined;
    header = raw[i + 1];
  }
  return header;
}

/** The bearer token of an Authorization header, or undefined. */
export function bearerToken(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match?.[1];
}
