import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { tableDigest } from "../../src/client/index.js";
import { DigestedTable, compareUtf8 } from "../../src/client/digest.js";

const sha256 = (text: string): string => createHash("sha256").update(text, "utf8").digest("hex");

describe("tableDigest", () => {
  it("hashes the empty table as the SHA-256 of the empty string", () => {
    expect(tableDigest([])).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });

  it("hashes one line per route, sorted by id, whatever the input order", () => {
    const routes = [
      { id: "b0000000-0000-4000-8000-000000000002", version: 7 },
      { id: "a0000000-0000-4000-8000-000000000001", version: 42 },
    ];
    const expected = sha256(
      "a0000000-0000-4000-8000-000000000001 42\nb0000000-0000-4000-8000-000000000002 7\n",
    );
    expect(tableDigest(routes)).toBe(expected);
    expect(tableDigest([...routes].reverse())).toBe(expected);
  });

  it("sorts in byte order, not locale order", () => {
    // Upper case sorts before lower case in bytes; localeCompare would put "a" first.
    expect(
      tableDigest([
        { id: "a", version: 1 },
        { id: "B", version: 2 },
      ]),
    ).toBe(sha256("B 2\na 1\n"));
  });

  it("changes when a route's version changes", () => {
    expect(tableDigest([{ id: "r", version: 1 }])).not.toBe(tableDigest([{ id: "r", version: 2 }]));
  });

  it("reads only id and version, so whole routes can be passed", () => {
    const route = { id: "r", version: 3, url: "http://x/", port: 1 };
    expect(tableDigest([route])).toBe(sha256("r 3\n"));
  });
});

describe("compareUtf8", () => {
  it("orders strings as their UTF-8 bytes do", () => {
    const samples = [
      "",
      "a",
      "B",
      "ab",
      "\u{1F600}",
      "\uE000",
      "\uFFFD",
      "é",
      "\u007F",
      "\u0080",
      "\u{10FFFF}",
      "a\u{1F600}",
      "a\uFFFF",
    ];
    for (const a of samples) {
      for (const b of samples) {
        const bytes = Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
        expect(Math.sign(compareUtf8(a, b))).toBe(bytes);
      }
    }
  });
});

describe("DigestedTable", () => {
  it("keeps the digest tableDigest gives for the same routes through sets and deletes", () => {
    const table = new DigestedTable();
    const truth = new Map<string, number>();
    const ids = ["r1", "\u{1F600}", "\uE000", "R2", "r10", "é"];
    for (let step = 0; step < 60; step++) {
      const id = ids[(step * 7) % ids.length]!;
      if (step % 4 === 3) {
        table.delete(id);
        truth.delete(id);
      } else {
        table.set(id, step);
        truth.set(id, step);
      }
      const entries = [...truth].map(([key, version]) => ({ id: key, version }));
      expect(table.digest).toBe(tableDigest(entries));
      expect(table.size).toBe(truth.size);
    }
  });
});
