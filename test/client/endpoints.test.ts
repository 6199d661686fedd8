import { describe, expect, it } from "vitest";
import { fullJitterDelay } from "../../src/client/index.js";
import { registerUrl, streamUrl } from "../../src/client/endpoints.js";

describe("registerUrl", () => {
  it("keeps a path prefix of the coordinator URL", () => {
    expect(registerUrl("http://c:6030").href).toBe("http://c:6030/workers/register");
    expect(registerUrl("https://ops.example.com/appproxy").href).toBe(
      "https://ops.example.com/appproxy/workers/register",
    );
  });
});

describe("streamUrl", () => {
  it("uses an absolute stream_url and sets since", () => {
    expect(streamUrl("ws://c2:7000/workers/w/stream?since=1", "http://c:6030", "w", 42).href).toBe(
      "ws://c2:7000/workers/w/stream?since=42",
    );
  });

  it("maps http(s) stream URLs to ws(s)", () => {
    expect(streamUrl("https://c2/workers/w/stream", "http://c:6030", "w", 1).href).toBe(
      "wss://c2/workers/w/stream?since=1",
    );
  });

  it("never steps down from TLS: a plain-text stream_url from an https coordinator is not used", () => {
    for (const advertised of ["ws://c:80/workers/w/stream", "http://c/workers/w/stream"]) {
      expect(streamUrl(advertised, "https://c/appproxy", "w", 3).href).toBe(
        "wss://c/appproxy/workers/w/stream?since=3",
      );
    }
    expect(streamUrl("wss://c2/workers/w/stream", "https://c", "w", 3).href).toBe(
      "wss://c2/workers/w/stream?since=3",
    );
  });

  it("builds the URL from the coordinator URL when stream_url is relative", () => {
    expect(streamUrl("/workers/w/stream", "https://c:6030/prefix/", "w", 0).href).toBe(
      "wss://c:6030/prefix/workers/w/stream?since=0",
    );
  });

  it("builds the URL from the coordinator URL when stream_url names an unroutable host", () => {
    expect(
      streamUrl("ws://0.0.0.0:6030/workers/w/stream", "http://10.1.2.3:6030", "w", 5).href,
    ).toBe("ws://10.1.2.3:6030/workers/w/stream?since=5");
    expect(streamUrl("ws://[::]:6030/workers/w/stream", "http://c:6030", "w", 5).host).toBe(
      "c:6030",
    );
  });
});

describe("fullJitterDelay", () => {
  it("draws from zero up to a ceiling that doubles from min to max", () => {
    expect(fullJitterDelay(0, 100, 10_000, () => 0.999)).toBe(99);
    expect(fullJitterDelay(3, 100, 10_000, () => 0.5)).toBe(400);
    expect(fullJitterDelay(20, 100, 10_000, () => 0.5)).toBe(5000);
    expect(fullJitterDelay(10_000, 100, 10_000, () => 0.999)).toBe(9990);
    expect(fullJitterDelay(5, 100, 10_000, () => 0)).toBe(0);
  });
});
