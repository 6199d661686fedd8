import Joi from "joi";
import { optionalText } from "../shared/schema-parts.js";

export const MIN_TTL_S = 60;
export const MAX_TTL_S = 2_592_000;
export const DEFAULT_TTL_S = 28_800;

export const accessTokenRequestSchema = Joi.object({
  user_id: optionalText().default(null),
  ttl_s: Joi.number().integer().strict().min(MIN_TTL_S).max(MAX_TTL_S).default(DEFAULT_TTL_S),
});

/** A validated `POST /routes/{id}/tokens` body. */
export interface AccessTokenRequest {
  user_id: string | null;
  ttl_s: number;
}
