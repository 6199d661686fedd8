/**
 * Hand-written narrowing of JSON values received from the coordinator. Each reader takes the value
 * and its path (for example `upserts[3].port`) and returns it typed, or throws a ShapeError that
 * names the path, so a bad frame is reported precisely without pulling a schema library into
 * every proxy worker.
 */

export class ShapeError extends Error {
  constructor(
    readonly path: string,
    readonly expected: string,
  ) {
    super(`${path || "frame"}: expected ${expected}`);
    this.name = "ShapeError";
  }
}

export type JsonObject = Readonly<Record<string, unknown>>;

export function isJsonObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function expectObject(value: unknown, path: string): JsonObject {
  if (!isJsonObject(value)) throw new ShapeError(path, "an object");
  return value;
}

export function expectString(value: unknown, path: string): string {
  if (typeof value !== "string") throw new ShapeError(path, "a string");
  return value;
}

export function expectNonEmptyString(value: unknown, path: string): string {
  if (typeof value !== "string" || value.length === 0) {
    throw new ShapeError(path, "a non-empty string");
  }
  return value;
}

export function expectBoolean(value: unknown, path: string): boolean {
  if (typeof value !== "boolean") throw new ShapeError(path, "a boolean");
  return value;
}

export function expectInteger(value: unknown, path: string, min = 0): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    throw new ShapeError(path, `an integer >= ${min}`);
  }
  return value;
}

export function expectPositiveNumber(value: unknown, path: string): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new ShapeError(path, "a positive number");
  }
  return value;
}

export function expectOneOf<const T extends string>(
  value: unknown,
  path: string,
  allowed: readonly T[],
): T {
  const found = allowed.find((candidate) => candidate === value);
  if (found === undefined) throw new ShapeError(path, `one of ${allowed.join(", ")}`);
  return found;
}

export function expectArray<T>(
  value: unknown,
  path: string,
  readItem: (item: unknown, itemPath: string) => T,
): T[] {
  if (!Array.isArray(value)) throw new ShapeError(path, "an array");
  return value.map((item: unknown, index) => readItem(item, `${path}[${index}]`));
}

export function expectNullable<T>(
  value: unknown,
  path: string,
  read: (value: unknown, path: string) => T,
): T | null {
  return value === null ? null : read(value, path);
}

/** A flat map of string labels, as used by `labels` and `worker_selector`. */
export function expectStringMap(value: unknown, path: string): Record<string, string> {
  const object = expectObject(value, path);
  const labels: Record<string, string> = {};
  for (const [key, label] of Object.entries(object)) {
    labels[key] = expectString(label, `${path}.${key}`);
  }
  return labels;
}

/** Whether the object carries the key at all; absent optional fields are skipped, not checked. */
export function hasField(object: JsonObject, key: string): boolean {
  return Object.prototype.hasOwnProperty.call(object, key);
}

export function joinPath(parent: string, key: string): string {
  return parent ? `${parent}.${key}` : key;
}
