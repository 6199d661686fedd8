import { describe, expect, it } from "vitest";
import { encodeWorkerFrame, parseCoordinatorFrame } from "../../src/client/index.js";
import { makeRoute } from "./route-factory.js";

const parse = (frame: unknown): ReturnType<typeof parseCoordinatorFrame> =>
  parseCoordinatorFrame(JSON.stringify(frame));

describe("parseCoordinatorFrame", () => {
  it("reads hello", () => {
    const hello = { type: "hello", protocol: 1, instance_id: "i-1", heartbeat_interval_s: 10 };
    expect(parse(hello)).toEqual({ kind: "frame", frame: hello });
  });

  it("reads a snapshot with its routes", () => {
    const route = makeRoute();
    const snapshot = { type: "snapshot", version: 3, routes: [route], digest: "d" };
    expect(parse(snapshot)).toEqual({ kind: "frame", frame: snapshot });
  });

  it("reads a diff", () => {
    const route = makeRoute();
    const diff = { type: "diff", from: 3, to: 5, upserts: [route], deletes: ["gone"], digest: "d" };
    expect(parse(diff)).toEqual({ kind: "frame", frame: diff });
  });

  it("reads an error frame", () => {
    const error = { type: "error", code: "bad_frame", message: "nope" };
    expect(parse(error)).toEqual({ kind: "frame", frame: error });
  });

  it("ignores fields it does not know, also inside routes", () => {
    const route = makeRoute();
    const result = parse({
      type: "diff",
      from: 1,
      to: 2,
      upserts: [{ ...route, future_field: { x: 1 } }],
      deletes: [],
      digest: "d",
      compression: "none",
    });
    expect(result).toEqual({
      kind: "frame",
      frame: { type: "diff", from: 1, to: 2, upserts: [route], deletes: [], digest: "d" },
    });
  });

  it("ignores frame types it does not know", () => {
    expect(parse({ type: "weather", sunny: true })).toEqual({ kind: "ignored", type: "weather" });
  });

  it("calls text that is not JSON invalid", () => {
    expect(parseCoordinatorFrame("{not json")).toMatchObject({ kind: "invalid" });
  });

  it("calls JSON without a type invalid", () => {
    expect(parse({ version: 1 })).toMatchObject({ kind: "invalid", reason: "frame has no type" });
    expect(parse([1, 2])).toMatchObject({ kind: "invalid" });
    expect(parse("snapshot")).toMatchObject({ kind: "invalid" });
  });

  it("calls a known type of the wrong shape invalid, naming the field and the version", () => {
    const route = { ...makeRoute(), port: "10201" };
    const result = parse({ type: "snapshot", version: 9, routes: [route], digest: "d" });
    expect(result).toMatchObject({ kind: "invalid", type: "snapshot", version: 9 });
    expect(result.kind === "invalid" && result.reason).toContain("routes[0].port");
  });

  it("names the diff's target version when the diff is malformed", () => {
    const result = parse({
      type: "diff",
      from: 4,
      to: 6,
      upserts: "none",
      deletes: [],
      digest: "d",
    });
    expect(result).toMatchObject({ kind: "invalid", type: "diff", version: 6 });
  });

  it("rejects routes with missing essentials, unknown protocols or no upstream", () => {
    const withoutUrl: Record<string, unknown> = { ...makeRoute() };
    delete withoutUrl.url;
    for (const route of [
      withoutUrl,
      { ...makeRoute(), protocol: "smtp" },
      { ...makeRoute(), upstreams: [] },
    ]) {
      expect(parse({ type: "snapshot", version: 1, routes: [route], digest: "d" }).kind).toBe(
        "invalid",
      );
    }
  });

  it("rejects a diff whose to is before its from", () => {
    expect(
      parse({ type: "diff", from: 5, to: 4, upserts: [], deletes: [], digest: "d" }).kind,
    ).toBe("invalid");
  });

  it("rejects negative and fractional versions", () => {
    expect(parse({ type: "snapshot", version: -1, routes: [], digest: "d" }).kind).toBe("invalid");
    expect(parse({ type: "snapshot", version: 1.5, routes: [], digest: "d" }).kind).toBe("invalid");
  });
});

describe("encodeWorkerFrame", () => {
  it("writes the frames of the contract as JSON text", () => {
    expect(JSON.parse(encodeWorkerFrame({ type: "ack", version: 3, digest: "d" }))).toEqual({
      type: "ack",
      version: 3,
      digest: "d",
    });
    expect(encodeWorkerFrame({ type: "resync" })).toBe('{"type":"resync"}');
    expect(
      JSON.parse(
        encodeWorkerFrame({ type: "activity", routes: { r: "2024-01-01T00:00:00.000Z" } }),
      ),
    ).toEqual({
      type: "activity",
      routes: { r: "2024-01-01T00:00:00.000Z" },
    });
  });
});
