import { tableDigest } from "../client/digest.js";

/**
 * The digest of a worker's table (docs/api.md, "The stream"), from the session's route id → version map. The one
 * definition lives with the client library, so that both ends of the stream compute it alike.
 */
export function workerDigest(table: ReadonlyMap<string, number>): string {
  return tableDigest(Array.from(table, ([id, version]) => ({ id, version })));
}
