import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import type { WebSocket } from "ws";
import { routeUrl } from "../../src/routes/model.js";
import { isStorable, storable } from "../../src/shared/text.js";
import { closeCodeLabel } from "../../src/sync/close-codes.js";
import { DigestedTable } from "../../src/client/digest.js";
import { parseInbound } from "../../src/sync/frames.js";
import { closeReason, WorkerSession } from "../../src/sync/session.js";
import type { LoggedEntry } from "../../src/sync/changelog.js";
import type { RouteView } from "../../src/routes/model.js";

const sha = (s: string) => createHash("sha256").update(s).digest("hex");
const A = "00000000-0000-4000-8000-00000000000a";
const B = "00000000-0000-4000-8000-00000000000b";

describe("a session's table digest", () => {
  it("hashes sorted '<id> <version>' lines; the empty table hashes the empty string", () => {
    const table = new DigestedTable();
    expect(table.digest).toBe(sha(""));
    table.set(B, 7);
    table.set(A, 3);
    expect(table.digest).toBe(sha(`${A} 3\n${B} 7\n`));
  });
});

describe("parseInbound", () => {
  it("accepts the four known frames and ignores unknown types and fields", () => {
    expect(
      parseInbound(JSON.stringify({ type: "ack", version: 3, digest: sha(""), extra: 1 })).kind,
    ).toBe("frame");
    expect(parseInbound(JSON.stringify({ type: "nack", version: 3, error: "boom" })).kind).toBe(
      "frame",
    );
    expect(parseInbound(JSON.stringify({ type: "resync" })).kind).toBe("frame");
    expect(
      parseInbound(JSON.stringify({ type: "activity", routes: { [A]: new Date().toISOString() } }))
        .kind,
    ).toBe("frame");
    expect(parseInbound(JSON.stringify({ type: "future-thing", x: 1 }))).toEqual({
      kind: "ignored",
      type: "future-thing",
    });
  });

  it.each([
    ["not json", "{"],
    ["no type", JSON.stringify({ version: 1 })],
    ["array", "[]"],
    ["ack without digest", JSON.stringify({ type: "ack", version: 1 })],
    ["ack with string version", JSON.stringify({ type: "ack", version: "1", digest: sha("") })],
    [
      "ack with a fractional version",
      JSON.stringify({ type: "ack", version: 1.5, digest: sha("") }),
    ],
    ["ack with a negative version", JSON.stringify({ type: "ack", version: -1, digest: sha("") })],
    [
      "ack with an unsafe version",
      JSON.stringify({ type: "ack", version: 2 ** 53, digest: sha("") }),
    ],
    [
      "ack with an upper-case digest",
      JSON.stringify({ type: "ack", version: 1, digest: sha("").toUpperCase() }),
    ],
    ["ack with a short digest", JSON.stringify({ type: "ack", version: 1, digest: "abc" })],
    ["ack with a null digest", JSON.stringify({ type: "ack", version: 1, digest: null })],
    ["activity with bad time", JSON.stringify({ type: "activity", routes: { [A]: "yesterday" } })],
    ["__proto__ type", JSON.stringify({ type: "__proto__" })],
  ])("refuses %s", (name, text) => {
    const parsed = parseInbound(text);
    expect(parsed.kind).not.toBe("frame");
    // A bad ack is an error the worker is told about, with the problem named.
    if (name.startsWith("ack")) expect(parsed).toMatchObject({ reason: /^ack frame: / });
  });
});

function route(id: string, version: number): RouteView {
  return { id, version } as RouteView;
}

function entry(version: number, id: string, op: "upsert" | "delete"): LoggedEntry {
  return {
    version,
    worker_id: "w",
    route_id: id,
    op,
    route: op === "upsert" ? route(id, version) : null,
  };
}

describe("WorkerSession frames", () => {
  const socket = {
    readyState: 1,
    OPEN: 1,
    bufferedAmount: 0,
    send: () => undefined,
  } as unknown as WebSocket;

  it("keeps diffs contiguous, lets the last change per route win, and digests the result", () => {
    const s = new WorkerSession("w", socket, new Date(), 1);
    const snap = s.snapshot(5, [route(A, 4)]);
    expect(snap.digest).toBe(sha(`${A} 4\n`));
    const d1 = s.diff(8, [entry(6, B, "upsert"), entry(7, A, "delete"), entry(8, B, "upsert")]);
    expect(d1).toMatchObject({ from: 5, to: 8, deletes: [A] });
    expect(d1.upserts).toEqual([route(B, 8)]);
    expect(d1.digest).toBe(sha(`${B} 8\n`));
    const empty = s.diff(9, []);
    expect(empty).toMatchObject({ from: 8, to: 9, upserts: [], deletes: [] });
    expect(s.digestMatches(9, empty.digest)).toBe(true);
    expect(s.digestMatches(9, sha("x"))).toBe(false);
  });

  it("ignores entries the worker already holds", () => {
    const s = new WorkerSession("w", socket, new Date(), 1);
    s.snapshot(10, [route(A, 10)]);
    const d = s.diff(11, [entry(9, B, "upsert"), entry(10, A, "upsert"), entry(11, A, "delete")]);
    expect(d.upserts).toEqual([]);
    expect(d.deletes).toEqual([A]);
  });
});

describe("routeUrl", () => {
  const portWorker = {
    advertised_host: "w1.example.com",
    frontend_mode: "port" as const,
    tls: false,
    wildcard_domain: null,
    wildcard_traffic_port: null,
  };
  const wildcard = {
    advertised_host: "x",
    frontend_mode: "wildcard" as const,
    tls: true,
    wildcard_domain: "apps.example.com",
    wildcard_traffic_port: null,
  };
  it("builds port, tcp and wildcard URLs", () => {
    expect(routeUrl({ protocol: "http", port: 10201, subdomain: null }, portWorker)).toBe(
      "http://w1.example.com:10201/",
    );
    expect(routeUrl({ protocol: "tcp", port: 10201, subdomain: null }, portWorker)).toBe(
      "tcp://w1.example.com:10201",
    );
    expect(routeUrl({ protocol: "http", port: null, subdomain: "nb" }, wildcard)).toBe(
      "https://nb.apps.example.com/",
    );
    expect(
      routeUrl(
        { protocol: "http", port: null, subdomain: "nb" },
        { ...wildcard, wildcard_traffic_port: 8443 },
      ),
    ).toBe("https://nb.apps.example.com:8443/");
    expect(
      routeUrl({ protocol: "tcp", port: null, subdomain: "nb" }, { ...wildcard, tls: false }),
    ).toBe("tcp://nb.apps.example.com:80");
    expect(
      routeUrl(
        { protocol: "http", port: 1, subdomain: null },
        { ...portWorker, advertised_host: "::1" },
      ),
    ).toBe("http://[::1]:1/");
  });
});

describe("closeCodeLabel", () => {
  it("names the protocol's and the stream's codes, and no others", () => {
    for (const code of [1000, 1001, 1006, 1009, 1011, 1015, 4000, 4008, 4400, 4404]) {
      expect(closeCodeLabel(code)).toBe(String(code));
    }
    for (const code of [999, 1016, 2999, 3000, 3456, 4001, 4999, 65535]) {
      expect(closeCodeLabel(code)).toBe("other");
    }
  });
});

describe("closeReason", () => {
  it("keeps reasons a close frame can carry, and cuts others at a character boundary", () => {
    expect(closeReason("unsent data passed 8 MiB")).toBe("unsent data passed 8 MiB");
    expect(closeReason("a".repeat(123))).toBe("a".repeat(123));
    for (const text of ["a".repeat(124), "é".repeat(100), "😀".repeat(40), "a" + "€".repeat(60)]) {
      const cut = closeReason(text);
      expect(Buffer.byteLength(cut), text).toBeLessThanOrEqual(123);
      expect(cut.endsWith("…")).toBe(true);
      expect(text.startsWith(cut.slice(0, -1))).toBe(true);
      expect(cut).not.toContain("\uFFFD");
    }
  });
});

describe("storable text", () => {
  it("refuses NUL and unpaired surrogates, keeps pairs, and replaces what it refuses", () => {
    for (const ok of ["", "jupyter", "é€😀", "a\ud83d\ude00b"])
      expect(isStorable(ok), ok).toBe(true);
    for (const bad of ["a\u0000b", "\ud800", "x\udc00", "\ude00\ud83d"]) {
      expect(isStorable(bad), JSON.stringify(bad)).toBe(false);
      expect(isStorable(storable(bad))).toBe(true);
    }
    expect(storable("nack\u0000 \ud800!")).toBe("nack\uFFFD \uFFFD!");
    expect(storable("😀")).toBe("😀");
  });
});
