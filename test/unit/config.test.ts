import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("has the documented defaults", () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 6030,
      host: "0.0.0.0",
      databaseUrl: undefined,
      dataDir: "./data",
      publicStatus: false,
      heartbeatIntervalS: 10,
      workerLostAfterS: 30,
      workerForgetAfterS: 86400,
      reaperCron: "*/5 * * * * *",
      changelogRetention: 100000,
      logLevel: "info",
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("refuses a token given to two roles, in one line naming both settings", () => {
    const token = "shared-token-0123456789";
    let error: unknown;
    try {
      loadConfig({
        MANAGER_TOKENS: `manager-token-0123456789,${token}`,
        REGISTRATION_TOKENS: token,
        ADMIN_TOKENS: "admin-token-0123456789",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("MANAGER_TOKENS");
    expect(problems[0]).toContain("REGISTRATION_TOKENS");
    expect(problems[0]).not.toContain(token);
    // One token twice in one role's list is no conflict.
    expect(loadConfig({ ADMIN_TOKENS: `${token},${token}` }).adminTokens).toEqual([token, token]);
  });

  it("reads the connection limits, with their documented defaults", () => {
    expect(loadConfig({})).toMatchObject({
      maxConnections: 10000,
      headersTimeoutS: 20,
      requestTimeoutS: 60,
      idleTimeoutS: 65,
    });
    expect(() => loadConfig({ MAX_CONNECTIONS: "0" })).toThrow(/MAX_CONNECTIONS/);
  });

  it("samples the event-loop delay every 20 ms unless told otherwise, 1 to 1000 ms", () => {
    expect(loadConfig({}).eventLoopResolutionMs).toBe(20);
    expect(loadConfig({ EVENT_LOOP_RESOLUTION_MS: "10" }).eventLoopResolutionMs).toBe(10);
    for (const bad of ["0", "1001", "2.5", "often"]) {
      expect(() => loadConfig({ EVENT_LOOP_RESOLUTION_MS: bad })).toThrow(
        /EVENT_LOOP_RESOLUTION_MS/,
      );
    }
  });

  it("splits token lists so that tokens can be rotated", () => {
    expect(
      loadConfig({ MANAGER_TOKENS: "aaaaaaaaaaaaaaaa,bbbbbbbbbbbbbbbb" }).managerTokens,
    ).toEqual(["aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]);
  });

  it("names every bad setting at once", () => {
    let error: unknown;
    try {
      loadConfig({
        PORT: "70000",
        PUBLIC_STATUS: "maybe",
        REAPER_CRON: "nope",
        DATABASE_URL: "mysql://x",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.join("\n");
    for (const name of ["PORT", "PUBLIC_STATUS", "REAPER_CRON", "DATABASE_URL"]) {
      expect(problems).toContain(`invalid setting ${name}`);
    }
  });
});
