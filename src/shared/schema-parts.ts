import Joi from "joi";
import { hasControlCharacter } from "./text.js";

const CONTROL_MESSAGE =
  "must not contain control characters (U+0000-U+001F, U+007F-U+009F) or line separators (U+2028, U+2029)";

/**
 * Text a worker may put on the wire (a header, a log line): no control characters (see
 * hasControlCharacter). Used alike by the fields that store it and the filters that find it.
 */
export const plainText = (max: number) =>
  Joi.string()
    .max(max)
    .custom((value: string, helpers) =>
      hasControlCharacter(value) ? helpers.message({ custom: CONTROL_MESSAGE }) : value,
    );

/** A DNS label: worker names and subdomains. */
export const dnsLabel = Joi.string()
  .min(1)
  .max(63)
  .pattern(/^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/)
  .message("must be 1-63 characters of a-z, 0-9 and '-', not starting or ending with '-'");

const LABEL_KEY = /^[A-Za-z0-9._/-]{1,63}$/;
const LABEL_VALUE_MAX = 255;

export const labelMap = Joi.object()
  .pattern(Joi.string().min(1).max(63).pattern(LABEL_KEY), plainText(LABEL_VALUE_MAX).allow(""))
  .max(64);

/**
 * A `label=key:value` filter: exactly the labels labelMap stores (a key never holds ':', so the
 * first one splits), so that every stored label can be matched and nothing else is asked for.
 */
export const labelFilter = Joi.string().custom((value: string, helpers) => {
  const colon = value.indexOf(":");
  const key = colon < 0 ? "" : value.slice(0, colon);
  const label = value.slice(colon + 1);
  if (!LABEL_KEY.test(key)) {
    return helpers.message({
      custom: "must be key:value, the key 1-63 characters of A-Z, a-z, 0-9, '.', '_', '/', '-'",
    });
  }
  if (label.length > LABEL_VALUE_MAX) {
    return helpers.message({
      custom: `must have a value of at most ${LABEL_VALUE_MAX} characters`,
    });
  }
  if (hasControlCharacter(label)) return helpers.message({ custom: CONTROL_MESSAGE });
  return value;
});

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

export const optionalText = (max = 255) => plainText(max).min(1).allow(null);

/** `?wait=applied&timeout_ms=N`, accepted on every mutation. */
export const propagationQuery = {
  wait: Joi.string().valid("applied"),
  timeout_ms: Joi.number().integer().min(1).max(30000),
};

export interface PropagationQuery {
  wait?: "applied";
  timeout_ms?: number;
}
