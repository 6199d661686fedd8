import type Joi from "joi";
import { validationFailed, type FieldProblem } from "../errors.js";

/**
 * Paths of own `__proto__` keys anywhere in `value`. JSON.parse makes them ordinary keys, and
 * Joi drops them silently instead of refusing them as unknown. Iterative: bodies may nest deeply.
 * A path is spelled out only for a key found (each node keeps its parent), not for every key.
 */
function protoKeyPaths(value: unknown): string[][] {
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
  const found: string[][] = [];
  const stack: Visit[] = [{ node: value, key: "", parent: undefined }];
  while (stack.length > 0) {
    const visit = stack.pop()!;
    const { node } = visit;
    if (typeof node !== "object" || node === null) continue;
    for (const key of Object.keys(node)) {
      const child: Visit = { node: (node as Record<string, unknown>)[key], key, parent: visit };
      if (key === "__proto__") found.push(pathOf(child));
      if (typeof child.node === "object" && child.node !== null) stack.push(child);
    }
  }
  return found;
}

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
  const smuggled = protoKeyPaths(value).map((parts) => ({
    path: [prefix, ...parts].filter((p) => p !== undefined && p !== "").join("."),
    message: "is not allowed",
  }));
  if (error || smuggled.length > 0) {
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
    throw validationFailed([...problems, ...smuggled]);
  }
  return converted as T;
}
