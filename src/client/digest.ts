import { createHash } from "node:crypto";

/** What the digest covers of a route: its identity and the version of its last change. */
export interface DigestEntry {
  id: string;
  version: number;
}

/**
 * The digest of a worker's table as docs/api.md ("The stream") defines it: the lowercase hex SHA-256 of
 * one line `"<id> <version>\n"` per route, sorted by id in UTF-8 byte order. The empty table
 * hashes the empty string. Pure: equal tables give equal digests whatever the input order.
 */
export function tableDigest(routes: Iterable<DigestEntry>): string {
  const entries = Array.from(routes, (route) => ({
    key: Buffer.from(route.id, "utf8"),
    line: `${route.id} ${route.version}\n`,
  }));
  // Byte order, not localeCompare or UTF-16 order, so every side of the stream agrees.
  entries.sort((a, b) => Buffer.compare(a.key, b.key));
  const hash = createHash("sha256");
  for (const entry of entries) hash.update(entry.line, "utf8");
  return hash.digest("hex");
}
