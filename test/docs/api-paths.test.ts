import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { openApiDocument } from "../../src/ops/openapi.js";

const API_MD = path.resolve(import.meta.dirname, "../../docs/api.md");

/** "METHOD /path" of every `### METHOD /path` heading of docs/api.md, as written. */
function documentedOperations(markdown: string): string[] {
  return [...markdown.matchAll(/^### (GET|POST|PATCH|PUT|DELETE) (\S+)\s*$/gm)].map(
    ([, method, route]) => `${method} ${route}`,
  );
}

/** "METHOD /path" of every operation of the OpenAPI document the coordinator serves. */
function servedOperations(): string[] {
  const { paths } = openApiDocument("test") as { paths: Record<string, Record<string, unknown>> };
  return Object.entries(paths).flatMap(([route, operations]) =>
    Object.keys(operations).map((method) => `${method.toUpperCase()} ${route}`),
  );
}

describe("docs/api.md", () => {
  const documented = documentedOperations(readFileSync(API_MD, "utf8"));

  it("has a section for every operation of the OpenAPI document, and for nothing else", () => {
    expect([...documented].sort()).toEqual(servedOperations().sort());
  });

  it("documents each operation once", () => {
    expect(documented.filter((op, i) => documented.indexOf(op) !== i)).toEqual([]);
  });
});
