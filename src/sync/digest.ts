import { createHash } from "node:crypto";

/**
 * The digest of a worker's table (API.md): SHA-256, lowercase hex, of one line "<id> <version>\n"
 * per route, sorted by id in byte order. Route ids are ASCII, so string order is byte order.
 */
export function workerDigest(table: ReadonlyMap<string, number>): string {
  const ids = [...table.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const hash = createHash("sha256");
  for (const id of ids) hash.update(`${id} ${table.get(id)}\n`);
  return hash.digest("hex");
}
