import type Joi from "joi";
import { validationFailed, type FieldProblem } from "../errors.js";
import { isStorable } from "../shared/text.js";

/**
 * What a value may not carry, found anywhere in it: own `__proto__` keys (JSON.parse makes them
 * ordinary keys, and Joi drops them silently instead of refusing them as unknown), and text with a
 * NUL character or an unpaired UTF-16 surrogate (a JSON `\\u0000` or `\\ud800`), which PostgreSQL
 * cannot store. Iterative: bodies may nest deeply. A path is spelled out only for a problem found
 * (each node keeps its parent), not for every key.
 */
function smuggled(value: unknown): Array<{ parts: string[]; message: string }> {
  interface Visit {
    node: unknown;
    key: string;
    parent: Visit | undefined;
  }
  const pathOf = (visit: Visit): string[] => {
    const parts: string[] = [];
    for (let v: Visit | undefined = visit; v?.parent; v = v.parent) parts.unshift(v.key);
    return parts;
  };
  const found: Array<{ parts: string[]; message: string }> = [];
  const stack: Visit[] = [{ node: value, key: "", parent: undefined }];
  while (stack.length > 0 && found.length < MAX_REPORTED) {
    const visit = stack.pop()!;
    const { node } = visit;
    if (typeof node === "string") {
      if (!isStorable(node)) found.push({ parts: pathOf(visit), message: UNSTORABLE_TEXT });
      continue;
    }
    if (typeof node !== "object" || node === null) continue;
    for (const key of Object.keys(node)) {
      const inner = (node as Record<string, unknown>)[key];
      const badKey =
        key === "__proto__"
          ? "is not allowed"
          : isStorable(key)
            ? undefined
            : `has a key that ${UNSTORABLE_TEXT}`;
      const badText = typeof inner === "string" && !isStorable(inner);
      const nested = typeof inner === "object" && inner !== null;
      // Most keys are none of these: no record of them is made.
      if (badKey === undefined && !badText && !nested) continue;
      const child: Visit = { node: inner, key, parent: visit };
      if (badKey !== undefined) found.push({ parts: pathOf(child), message: badKey });
      if (badText) found.push({ parts: pathOf(child), message: UNSTORABLE_TEXT });
      if (nested) stack.push(child);
    }
  }
  return found;
}

const UNSTORABLE_TEXT = "must not contain NUL characters or unpaired surrogates";
/** Problems of this kind named in one answer: a body of a million NULs needs no million lines. */
const MAX_REPORTED = 100;

const PREFERENCES: Joi.ValidationOptions = {
  abortEarly: false,
  convert: true,
  errors: { label: false },
};

/**
 * Each schema with the preferences above set on it, made once: options passed to every
 * `validate` call would be merged with Joi's defaults on every request.
 */
const prepared = new WeakMap<Joi.Schema, Joi.Schema>();

function withPreferences(schema: Joi.Schema): Joi.Schema {
  let ready = prepared.get(schema);
  if (!ready) {
    ready = schema.prefs(PREFERENCES);
    prepared.set(schema, ready);
  }
  return ready;
}

/** Validates `value` against `schema`, naming every bad field; returns the converted value. */
export function validate<T>(schema: Joi.Schema, value: unknown, prefix?: string): T {
  const { error, value: converted } = withPreferences(schema).validate(value);
  const refused = smuggled(value).map(({ parts, message }) => ({
    path: [prefix, ...parts].filter((p) => p !== undefined && p !== "").join(".") || "(body)",
    message,
  }));
  if (error || refused.length > 0) {
    const problems: FieldProblem[] = (error?.details ?? []).flatMap((d) => {
      const parts = d.path.map(String);
      const join = (more: string[]) =>
        [prefix, ...parts, ...more].filter((p) => p !== undefined && p !== "").join(".") ||
        "(body)";
      // A conflict between peers (oxor, xor, nand) is reported on the object; name the fields.
      const present: unknown = d.context?.present;
      if (Array.isArray(present) && present.length > 0) {
        return present.map((peer) => ({ path: join([String(peer)]), message: d.message }));
      }
      return [{ path: join([]), message: d.message }];
    });
    throw validationFailed([...problems, ...refused]);
  }
  return converted as T;
}
