import { hash, timingSafeEqual } from "node:crypto";
import type { Request, RequestHandler } from "express";
import { jwtVerify } from "jose";
import { authFailed } from "./errors.js";

const digest = (value: string): Buffer => hash("sha256", value, "buffer");

/**
 * Backend.AI's one shared secret, checked the way their coordinator checks it: the header
 * `X-BackendAI-Token` holding the secret (bare, or after `Bearer ` or `BackendAI `), else
 * `Authorization: Bearer <JWT>` signed HS256 with the secret. Values are compared as SHA-256
 * digests in constant time; the secret is never written anywhere.
 */
export class BackendAiAuth {
  private readonly accepted: Buffer[];
  private readonly key: Uint8Array;

  constructor(secret: string) {
    this.accepted = [secret, `Bearer ${secret}`, `BackendAI ${secret}`].map(digest);
    this.key = new TextEncoder().encode(secret);
  }

  /** Whether the header holds exactly the secret, in one of the three accepted spellings. */
  private headerMatches(value: string, spellings: Buffer[] = this.accepted): boolean {
    const given = digest(value);
    let match = false;
    for (const accepted of spellings) if (timingSafeEqual(given, accepted)) match = true;
    return match;
  }

  private async authenticated(req: Request): Promise<boolean> {
    const header = req.get("x-backendai-token");
    if (header !== undefined) return this.headerMatches(header);
    const authorization = req.get("authorization");
    if (authorization === undefined) return false;
    const [method, token] = authorization.split(/\s+/, 2);
    if (method?.toLowerCase() !== "bearer" || !token) return false;
    try {
      await jwtVerify(token, this.key, { algorithms: ["HS256"] });
      return true;
    } catch {
      return false;
    }
  }

  /** The Manager's paths: 401 `auth-failed` without the secret. */
  required(): RequestHandler {
    return (req, _res, next) => {
      this.authenticated(req).then(
        (ok) => next(ok ? undefined : authFailed()),
        (error: unknown) => next(error),
      );
    };
  }

  /**
   * `POST /v2/conf`: their Manager sends it without any token, so deployments switch the check
   * off; with it on, only the exact `X-BackendAI-Token: <secret>` is taken, as theirs does.
   */
  conf(allowUnauthenticated: boolean): RequestHandler {
    const exact = this.accepted.slice(0, 1);
    return (req, _res, next) => {
      if (allowUnauthenticated) return next();
      const header = req.get("x-backendai-token");
      next(header !== undefined && this.headerMatches(header, exact) ? undefined : authFailed());
    };
  }
}
