import type Joi from "joi";
import { validationFailed, type FieldProblem } from "../errors.js";

/** Validates `value` against `schema`, naming every bad field; returns the converted value. */
export function validate<T>(schema: Joi.Schema, value: unknown, prefix?: string): T {
  const { error, value: converted } = schema.validate(value, {
    abortEarly: false,
    convert: true,
    errors: { label: false },
  });
  if (error) {
    const problems: FieldProblem[] = error.details.flatMap((d) => {
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
    throw validationFailed(problems);
  }
  return converted as T;
}
