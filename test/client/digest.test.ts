import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { tableDigest } from "../../src/client/index.js";

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
