import { mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Writable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import winston from "winston";
import { resolveSecrets } from "../../src/auth/secrets.js";
import { loadConfig } from "../../src/config.js";
import { startCoordinator } from "../../src/coordinator.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { TOKENS, startInstance } from "../support/harness.js";
import { BackendAiClient, endpointItem } from "./client.js";

let testDb: TestDatabase | undefined;
afterAll(() => testDb?.drop());

describe("the Backend.AI listener", () => {
  it("is not started without BACKENDAI_PORT, and its secret is then not generated", async () => {
    testDb = await createTestDatabase();
    const instance = await startInstance(await testDb.open());
    try {
      expect(instance.coordinator.backendaiUrl).toBeUndefined();
    } finally {
      await instance.stop();
    }
    const dataDir = mkdtempSync(path.join(os.tmpdir(), "appproxy-bai-"));
    const without = resolveSecrets(loadConfig({ DATA_DIR: dataDir }));
    expect(without.secrets.backendaiApiSecret).toBeUndefined();
    expect(readFileSync(path.join(dataDir, "secrets.json"), "utf8")).not.toContain("backendai");
    const withPort = resolveSecrets(loadConfig({ DATA_DIR: dataDir, BACKENDAI_PORT: "10200" }));
    expect(withPort.secrets.backendaiApiSecret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(withPort.generated.map((g) => g.setting)).toEqual(["BACKENDAI_API_SECRET"]);
    const again = resolveSecrets(loadConfig({ DATA_DIR: dataDir, BACKENDAI_PORT: "10200" }));
    expect(again.secrets.backendaiApiSecret).toBe(withPort.secrets.backendaiApiSecret);
  });

  it("never writes its secret to the log, whatever the requests carry", async () => {
    testDb ??= await createTestDatabase();
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = winston.createLogger({
      level: "silly",
      format: winston.format.json(),
      transports: [new winston.transports.Stream({ stream: sink })],
    });
    const config = loadConfig({
      PORT: "0",
      HOST: "127.0.0.1",
      BACKENDAI_PORT: "0",
      BACKENDAI_HOST: "127.0.0.1",
      LOG_LEVEL: "silly",
    });
    const coordinator = await startCoordinator({
      config,
      logger,
      database: await testDb.open(),
      secrets: {
        managerTokens: [TOKENS.manager],
        registrationTokens: [TOKENS.registration],
        adminTokens: [TOKENS.admin],
        tokenSecret: TOKENS.secret,
        accessTokenKeys: [TOKENS.accessKey],
        backendaiApiSecret: TOKENS.backendai,
      },
    });
    try {
      const bai = new BackendAiClient(coordinator.backendaiUrl!);
      const spellings: Array<Record<string, string>> = [
        { "X-BackendAI-Token": TOKENS.backendai },
        { "X-BackendAI-Token": `Bearer ${TOKENS.backendai}x` },
        { Authorization: `Bearer ${TOKENS.backendai}` },
      ];
      for (const headers of spellings) {
        await bai.as(headers).post("/v2/endpoints/bulk", { endpoints: [endpointItem("bad")] });
        await bai.as(headers).post("/v2/endpoints/bulk", "{broken");
        await bai.as(headers).get("/v2/endpoints/unknown-path");
        await bai.as(headers).post("/v2/conf", { secret: TOKENS.backendai });
      }
      expect(lines.length).toBeGreaterThan(0);
      expect(lines.join("")).not.toContain(TOKENS.backendai);
    } finally {
      await coordinator.stop();
    }
  });
});
