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
    const problems: FieldProblem[] = error.details.map((d) => {
      const parts = d.path.map(String);
      const path = [prefix, ...parts].filter((p) => p !== undefined && p !== "").join(".");
      return { path: path || "(body)", message: d.message };
    });
    throw validationFailed(problems);
  }
  return converted as T;
}
