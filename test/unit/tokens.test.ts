import { describe, expect, it } from "vitest";
import { bearerToken, TokenRegistry } from "../../src/auth/tokens.js";

const registry = new TokenRegistry(
  {
    manager: ["m-0123456789abcdef", "m2-0123456789abcdef"],
    registration: ["r-0123456789abcdef"],
    admin: ["a-0123456789abcdef"],
  },
  "secret-0123456789abcdef-0123456789abcdef",
);
const ID = "8a6e0804-2bd0-4672-b79d-d97027f74f8b";

describe("TokenRegistry", () => {
  it("knows every role, including rotated manager tokens", () => {
    expect(registry.identify("m-0123456789abcdef")).toEqual({ role: "manager" });
    expect(registry.identify("m2-0123456789abcdef")).toEqual({ role: "manager" });
    expect(registry.identify("r-0123456789abcdef")).toEqual({ role: "registration" });
    expect(registry.identify("a-0123456789abcdef")).toEqual({ role: "admin" });
    expect(registry.identify("m-0123456789abcdeX")).toBeUndefined();
    expect(registry.identify("")).toBeUndefined();
  });

  it("signs worker tokens that only verify for their worker and secret", () => {
    const token = registry.workerToken(ID);
    expect(registry.identify(token)).toEqual({ role: "worker", workerId: ID });
    const other = new TokenRegistry(
      { manager: [], registration: [], admin: [] },
      "another-secret-0123456789abcdef-012",
    );
    expect(other.identify(token)).toBeUndefined();
    const forged = token.replace(ID, "8a6e0804-2bd0-4672-b79d-d97027f74f8c");
    expect(registry.identify(forged)).toBeUndefined();
    expect(registry.identify(`${token}x`)).toBeUndefined();
    expect(registry.identify("wt1.not-a-uuid.sig")).toBeUndefined();
  });

  it("reads bearer tokens", () => {
    expect(bearerToken("Bearer abc")).toBe("abc");
    expect(bearerToken("bearer abc")).toBe("abc");
    expect(bearerToken("Basic abc")).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });
});
