import { Router } from "express";
import Joi from "joi";
import type { TokenRegistry } from "../auth/tokens.js";
import { notFound } from "../errors.js";
import { requireRole } from "../http/auth.js";
import { jsonBody } from "../http/body.js";
import { validate } from "../http/validate.js";
import type { AccessKeyRing } from "./keys.js";
import { accessTokenRequestSchema, type AccessTokenRequest } from "./schema.js";
import type { AccessTokenService } from "./service.js";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const requestBody = accessTokenRequestSchema.required();
/** Issuing takes no query parameters; unknown ones are refused like unknown fields. */
export const accessTokenQuerySchema = Joi.object({});

/**
 * Workers learn the keys from their stream; this copy is for everyone else, who may cache it a
 * little (a key is published well before it signs, see docs/access-tokens.md).
 */
const JWKS_MAX_AGE_S = 300;

/** HTTP for access tokens: issuing one for a route, and the public keys that verify them. */
export function accessRouter(deps: {
  accessTokens: AccessTokenService;
  ring: AccessKeyRing;
  tokens: TokenRegistry;
}): Router {
  const router = Router();
  const jwksBody = JSON.stringify(deps.ring.jwks);

  router.post(
    "/routes/:id/tokens",
    requireRole(deps.tokens, "manager"),
    jsonBody(),
    async (req, res) => {
      const raw = req.params.id as string;
      if (!UUID.test(raw)) throw notFound(`Route ${raw} does not exist.`);
      validate(accessTokenQuerySchema, req.query, "query");
      const request = validate<AccessTokenRequest>(requestBody, req.body);
      const issued = await deps.accessTokens.issue(raw.toLowerCase(), request);
      res.setHeader("Cache-Control", "no-store");
      res.status(201).json({
        token: issued.token,
        expires_at: issued.expires_at,
        setup_url: issued.setup_url,
      });
    },
  );

  router.get("/.well-known/jwks.json", (_req, res) => {
    res.setHeader("Cache-Control", `public, max-age=${JWKS_MAX_AGE_S}`);
    res.type("application/jwk-set+json").send(jwksBody);
  });

  return router;
}
