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

/**
 * The times a route may carry (`expires_at`) or a filter may name (`inactive_since`): ISO 8601,
 * years 1 to 9999. PostgreSQL's timestamptz reaches further (4713 BC to AD 294276), but not as far
 * as JavaScript's dates (±275760), and the drivers spell years beyond four digits and before 1 in
 * ways it does not read back: inside these bounds every time is stored as sent, on both databases.
 */
export const STORABLE_TIME_MIN = new Date("0001-01-01T00:00:00.000Z");
export const STORABLE_TIME_MAX = new Date("9999-12-31T23:59:59.999Z");

export const storableTime = Joi.date()
  .iso()
  .min(STORABLE_TIME_MIN)
  .max(STORABLE_TIME_MAX)
  .messages({
    "date.min": "must be a time in the years 0001 to 9999",
    "date.max": "must be a time in the years 0001 to 9999",
  });

/** Whether PostgreSQL stores `time` as it is (see storableTime). */
export const isStorableTime = (time: Date): boolean =>
  time >= STORABLE_TIME_MIN && time <= STORABLE_TIME_MAX;

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
