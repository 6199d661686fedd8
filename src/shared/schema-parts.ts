import Joi from "joi";

/** A DNS label: worker names and subdomains. */
export const dnsLabel = Joi.string()
  .min(1)
  .max(63)
  .pattern(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/)
  .message("must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'");

export const labelMap = Joi.object()
  .pattern(
    Joi.string()
      .min(1)
      .max(63)
      .pattern(/^[A-Za-z0-9._/-]+$/),
    Joi.string().max(255).allow(""),
  )
  .max(64);

export const tcpPort = Joi.number().integer().strict().min(1).max(65535);

export const uuid = Joi.string().guid().lowercase();

export const optionalText = (max = 255) => Joi.string().min(1).max(max).allow(null);

/** `?wait=applied&timeout_ms=N`, accepted on every mutation. */
export const propagationQuery = {
  wait: Joi.string().valid("applied"),
  timeout_ms: Joi.number().integer().min(1).max(30000),
};

export interface PropagationQuery {
  wait?: "applied";
  timeout_ms?: number;
}
