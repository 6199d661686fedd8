import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { openDatabase } from "../../src/db/database.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import { portWorker, routeBody } from "../support/factories.js";
import { Api, TOKENS, waitFor } from "../support/harness.js";
import { freePort } from "../support/net.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

// The real process, `npm start`'s command, stopped by a signal as an orchestrator stops it.
describe("SIGTERM", () => {
  let testDb: TestDatabase | undefined;
  let dataDir: string;
  let child: ChildProcess | undefined;
  let output = "";

  beforeAll(async () => {
    dataDir = mkdtempSync(path.join(os.tmpdir(), "appproxy-shutdown-"));
    const env: Record<string, string> = {
      PATH: process.env.PATH ?? "",
      MANAGER_TOKENS: TOKENS.manager,
      REGISTRATION_TOKENS: TOKENS.registration,
      ADMIN_TOKENS: TOKENS.admin,
      TOKEN_SECRET: TOKENS.secret,
      DATA_DIR: dataDir,
      HOST: "127.0.0.1",
      LOG_LEVEL: "info",
      WORKER_LOST_AFTER_S: "3600",
    };
    if (onPostgres()) {
      testDb = await createTestDatabase();
      env.DATABASE_URL = testDb.url!;
    } else {
      // A copy of the migrated template: a fresh embedded database takes seconds to create.
      cpSync(inject("pgliteTemplate"), path.join(dataDir, "pgdata"), { recursive: true });
    }
    env.PORT = String(await freePort());
    child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: REPO,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const keep = (chunk: Buffer) => (output += chunk.toString());
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    const url = `http://127.0.0.1:${env.PORT}`;
    await waitFor(
      async () => {
        if (child!.exitCode !== null) throw new Error(`exited at start-up: ${output}`);
        try {
          return (await fetch(`${url}/readyz`)).status === 200;
        } catch {
          return false;
        }
      },
      60_000,
      "the coordinator to be ready",
    );
    (globalThis as { shutdownUrl?: string }).shutdownUrl = url;
  }, 90_000);

  afterAll(async () => {
    if (child && child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await testDb?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("finishes requests in flight, closes the database and exits 0", async () => {
    const url = (globalThis as { shutdownUrl?: string }).shutdownUrl!;
    const manager = new Api(url, TOKENS.manager);
    const registration = new Api(url, TOKENS.registration);
    const worker = await registration.post<{ worker: { id: string } }>(
      "/workers/register",
      portWorker(),
    );
    expect(worker.status).toBe(201);
    // No stream: this request waits its full timeout for an acknowledgement that never comes.
    const inFlight = manager.post(
      "/routes?wait=applied&timeout_ms=2500",
      routeBody({ worker_id: worker.body.worker.id }),
    );
    await waitFor(() => output.includes('"path":"/workers/register"'), 5000, "the log line");
    const exited = new Promise<number | null>((resolve) => child!.once("exit", resolve));
    child!.kill("SIGTERM");
    const answer = await inFlight;
    expect(answer.status).toBe(202);
    expect(answer.headers.get("x-propagation")).toBe("pending");
    expect(await exited).toBe(0);
    expect(output).toContain('"message":"coordinator stopped"');
    // The write answered while stopping is in the database the coordinator closed cleanly.
    const db = testDb ? await testDb.open() : await openDatabase({ dataDir });
    try {
      const row = await db
        .knex("routes")
        .where({ id: (answer.body as { id: string }).id })
        .first();
      expect(row).toBeDefined();
    } finally {
      if (!testDb) await db.close();
    }
  }, 60_000);
});
