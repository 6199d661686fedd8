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
