import { createHash } from "node:crypto";

/** What the digest covers of a route: its identity and the version of its last change. */
export interface DigestEntry {
  id: string;
  version: number;
}

/** A UTF-16 code unit's rank in code point (and so UTF-8 byte) order. */
function codeUnitRank(unit: number): number {
  if (unit < 0xd800) return unit;
  // Surrogates stand for code points above U+FFFF: they sort after U+E000–U+FFFF.
  return unit <= 0xdfff ? unit + 0x2000 : unit - 0x800;
}

/**
 * Compares two strings as their UTF-8 bytes compare, without encoding them: UTF-8 byte order is
 * code point order, which differs from JavaScript's code unit order only where a surrogate pair
 * meets a character of U+E000–U+FFFF.
 */
export function compareUtf8(a: string, b: string): number {
  const shorter = Math.min(a.length, b.length);
  for (let i = 0; i < shorter; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) return codeUnitRank(x) - codeUnitRank(y);
  }
  return a.length - b.length;
}

/** Lines are hashed in pieces of about this many characters. */
const HASH_PIECE = 64 * 1024;

/** The digest of routes whose ids are already in byte order. */
function digestInOrder(ids: readonly string[], versionOf: (id: string) => number): string {
  const hash = createHash("sha256");
  let piece = "";
  for (const id of ids) {
    piece += `${id} ${versionOf(id)}\n`;
    if (piece.length >= HASH_PIECE) {
      hash.update(piece, "utf8");
      piece = "";
    }
  }
  hash.update(piece, "utf8");
  return hash.digest("hex");
}

/**
 * The digest of a worker's table as docs/api.md ("The stream") defines it: the lowercase hex SHA-256 of
 * one line `"<id> <version>\n"` per route, sorted by id in UTF-8 byte order. The empty table
 * hashes the empty string. Pure: equal tables give equal digests whatever the input order.
 */
export function tableDigest(routes: Iterable<DigestEntry>): string {
  const versions = new Map<string, number>();
  for (const route of routes) versions.set(route.id, route.version);
  // Byte order, not localeCompare or UTF-16 order, so every side of the stream agrees.
  return digestInOrder([...versions.keys()].sort(compareUtf8), (id) => versions.get(id)!);
}

/**
 * A table of route id → version that keeps its ids in byte order, so that its digest after a
 * change is one SHA-256 pass over its lines (the digest covers the whole table by definition)
 * rather than a sort; a change of k routes costs k binary searches. The digest is kept until the
 * table changes.
 */
export class DigestedTable {
  readonly #versions = new Map<string, number>();
  #order: string[] = [];
  #digest: string | undefined;

  get size(): number {
    return this.#versions.size;
  }

  has(id: string): boolean {
    return this.#versions.has(id);
  }

  set(id: string, version: number): void {
    const before = this.#versions.get(id);
    if (before === version) return;
    this.#versions.set(id, version);
    if (before === undefined) this.#order.splice(this.#position(id), 0, id);
    this.#digest = undefined;
  }

  delete(id: string): boolean {
    if (!this.#versions.delete(id)) return false;
    this.#order.splice(this.#position(id), 1);
    this.#digest = undefined;
    return true;
  }

  /** Replaces the whole table. */
  reset(entries: Iterable<DigestEntry>): void {
    this.#versions.clear();
    for (const entry of entries) this.#versions.set(entry.id, entry.version);
    this.#order = [...this.#versions.keys()].sort(compareUtf8);
    this.#digest = undefined;
  }

  get digest(): string {
    this.#digest ??= digestInOrder(this.#order, (id) => this.#versions.get(id)!);
    return this.#digest;
  }

  /** Where `id` is, or would go, in the byte-ordered ids. */
  #position(id: string): number {
    let low = 0;
    let high = this.#order.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      if (compareUtf8(this.#order[middle]!, id) < 0) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}
