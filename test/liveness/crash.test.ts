import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { WorkerClient } from "../../src/client/index.js";
import type { Database } from "../../src/db/database.js";
import { createTestDatabase, onPostgres, type TestDatabase } from "../support/database.js";
import type { RouteAnswer } from "../support/factories.js";
import { Api, TOKENS, waitFor } from "../support/harness.js";
import { freePort } from "../support/net.js";
import { expectedDigest, routesOfWorker } from "../sync/stream-client.js";
import { ClientPool, getStatus, metric, portRegistration, waitForWorker } from "./helpers.js";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const BURST = 600;
const IN_FLIGHT = 32;
const KILL_AT = 150;
const PORT_RANGE: [number, number] = [21000, 21999];

/** The real coordinator (`node --import tsx src/main.ts`) as a child process. */
class CoordinatorProcess {
  private child: ChildProcess | undefined;
  private output = "";
  private exited: Promise<void> = Promise.resolve();

  constructor(
    private readonly env: Record<string, string>,
    readonly url: string,
  ) {}

  async start(): Promise<void> {
    const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? "", ...this.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.child = child;
    const keep = (chunk: Buffer) => (this.output = (this.output + chunk.toString()).slice(-8000));
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    await waitFor(
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) {
          throw new Error(`coordinator exited at start-up: ${this.output}`);
        }
        try {
          return (await fetch(`${this.url}/readyz`)).status === 200;
        } catch {
          return false;
        }
      },
      30_000,
      "the coordinator to be ready",
    );
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  kill(): void {
    if (this.running) this.child!.kill("SIGKILL");
  }

  async killAndWait(): Promise<void> {
    this.kill();
    await this.exited;
  }
}

interface Attempt {
  id: string;
  sent: boolean;
  body: Record<string, unknown>;
  contested: boolean;
  status: number | undefined;
  route: RouteAnswer | undefined;
  version: number | undefined;
}

describe.skipIf(!onPostgres())(
  "a coordinator killed (SIGKILL) in the middle of a burst of writes",
  () => {
    let testDb: TestDatabase;
    let operator: Database;
    let coordinator: CoordinatorProcess;
    let dataDir: string;
    let clients: ClientPool;
    let api: { manager: Api; admin: Api; anonymous: Api };

    beforeAll(async () => {
      testDb = await createTestDatabase();
      operator = await testDb.open();
      dataDir = mkdtempSync(path.join(os.tmpdir(), "appproxy-crash-"));
      const port = await freePort();
      const url = `http://127.0.0.1:${port}`;
      coordinator = new CoordinatorProcess(
        {
          DATABASE_URL: testDb.url!,
          PORT: String(port),
          HOST: "127.0.0.1",
          DATA_DIR: dataDir,
          MANAGER_TOKENS: TOKENS.manager,
          REGISTRATION_TOKENS: TOKENS.registration,
          ADMIN_TOKENS: TOKENS.admin,
          TOKEN_SECRET: TOKENS.secret,
          LOG_LEVEL: "error",
          // Long enough that the restart alone never makes a worker lost.
          WORKER_LOST_AFTER_S: "30",
          HEARTBEAT_INTERVAL_S: "1",
          REAPER_CRON: "*/1 * * * * *",
        },
        url,
      );
      api = {
        manager: new Api(url, TOKENS.manager),
        admin: new Api(url, TOKENS.admin),
        anonymous: new Api(url),
      };
      clients = new ClientPool(() => url);
    });

    afterAll(async () => {
      await coordinator?.killAndWait();
      await clients?.stopAll();
      await operator?.close();
      await testDb?.drop();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    it("keeps exactly the answered writes, gap-free versions, and every worker converges without failover", async () => {
      await coordinator.start();
      const workers: WorkerClient[] = [];
      /** The instance each client's latest stream said hello from. */
      const streamInstance = new Map<WorkerClient, string>();
      for (let i = 0; i < 3; i++) {
        const client = await clients.start(portRegistration("crash", { port_range: PORT_RANGE }));
        client.on("connected", (event) => streamInstance.set(client, event.instanceId));
        await waitForWorker(api.admin, client.workerId!, (w) => w.status === "alive", "alive");
        workers.push(client);
      }
      const firstInstance = (await getStatus(api.admin)).coordinator.instance_id;

      const attempts: Attempt[] = [];
      for (let i = 0; i < BURST; i++) {
        // Two creates in ten ask for the same port of the same worker: one of the two must fail.
        const contested = i % 10 < 2;
        const pair = Math.floor(i / 10);
        const body: Record<string, unknown> = {
          id: randomUUID(),
          session_id: `crash-${i}`,
          app: "jupyter",
          upstreams: [{ host: "10.0.0.5", port: 8888, weight: 1 }],
          ...(contested
            ? { worker_id: workers[pair % 3]!.workerId, port: PORT_RANGE[1] - pair }
            : {}),
        };
        attempts.push({
          id: body.id as string,
          body,
          sent: false,
          contested,
          status: undefined,
          route: undefined,
          version: undefined,
        });
      }

      // A steady stream of writes, IN_FLIGHT at a time, cut by SIGKILL once KILL_AT were answered;
      // nothing more is sent after the kill.
      let answered = 0;
      let next = 0;
      const sender = async () => {
        while (next < attempts.length && coordinator.running) {
          const attempt = attempts[next++]!;
          attempt.sent = true;
          try {
            const res = await api.manager.post<RouteAnswer>("/routes", attempt.body);
            attempt.status = res.status;
            if (res.status < 300) {
              attempt.route = res.body;
              attempt.version = Number(res.headers.get("x-routing-version"));
            }
            answered += 1;
            if (answered === KILL_AT) coordinator.kill();
          } catch {
            // No answer: the connection died with the process.
          }
        }
      };
      await Promise.all(Array.from({ length: IN_FLIGHT }, sender));
      await coordinator.killAndWait();

      const ok = attempts.filter((a) => a.status !== undefined && a.status < 300);
      const refused = attempts.filter((a) => a.status !== undefined && a.status >= 300);
      const unanswered = attempts.filter((a) => a.sent && a.status === undefined);
      // The kill cut the burst: writes were answered before it, and the rest never were.
      expect(answered).toBeGreaterThanOrEqual(KILL_AT);
      expect(answered).toBeLessThan(BURST);
      expect(ok.length).toBeGreaterThan(0);
      expect(refused.length).toBeGreaterThan(0);
      for (const a of ok) expect(a.status).toBe(201);
      for (const a of refused)
        expect(a.contested, `a ${a.status} to an uncontested create`).toBe(true);

      await coordinator.start();

      const stored = await Promise.all(
        [...ok, ...refused].map(async (a) => ({
          attempt: a,
          res: await api.admin.get<RouteAnswer>(`/routes/${a.id}`),
        })),
      );
      for (const { attempt: a, res } of stored) {
        if (a.status === 201) {
          expect(res.status, `answered route ${a.id}`).toBe(200);
          expect(res.body.worker_id).toBe(a.route!.worker_id);
          expect(res.body.port).toBe(a.route!.port);
          expect(res.body.version).toBe(a.version);
        } else {
          expect(res.status, `refused route ${a.id}`).toBe(404);
        }
      }
      const answeredVersions = ok.map((a) => a.version!);
      expect(new Set(answeredVersions).size).toBe(answeredVersions.length);

      // A manager retries what got no answer, with the same id and body: the stored route (200)
      // where the write had committed, a new one (201) where it had not; a contested port may be 409.
      const retried = await Promise.all(
        unanswered.map(async (a) => ({
          attempt: a,
          res: await api.manager.post<RouteAnswer>("/routes", a.body),
        })),
      );
      for (const { attempt, res } of retried) {
        expect(attempt.contested ? [200, 201, 409] : [200, 201]).toContain(res.status);
      }

      const head = (await getStatus(api.admin)).routing.version;
      const versions = (
        (await operator.knex("changes").orderBy("version").select("version")) as Array<{
          version: number | string;
        }>
      ).map((c) => Number(c.version));
      expect(versions).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      expect(Math.max(...answeredVersions)).toBeLessThanOrEqual(head);

      const restartedInstance = (await getStatus(api.admin)).coordinator.instance_id;
      expect(restartedInstance).not.toBe(firstInstance);
      // Every worker reconnects by itself and holds exactly its table at the head.
      for (const client of workers) {
        const expected = expectedDigest(await routesOfWorker(api.admin, client.workerId!));
        await waitFor(
          () => client.table.version === head && client.table.digest === expected,
          20_000,
          `worker ${client.workerId} to converge`,
        );
        await waitForWorker(
          api.admin,
          client.workerId!,
          (w) => w.status === "alive" && w.connected,
          "alive",
        );
        // It did so over a new stream, to the new process.
        expect(streamInstance.get(client)).toBe(restartedInstance);
      }

      // No failover: nobody was lost and no route changed worker.
      const status = await getStatus(api.admin);
      expect(status.workers.lost).toBe(0);
      expect(await metric(api.anonymous, "appproxy_failovers_total")).toBe(0);
      for (const a of ok) {
        const res = await api.admin.get<RouteAnswer>(`/routes/${a.id}`);
        expect(res.body.worker_id).toBe(a.route!.worker_id);
      }
    }, 120_000);
  },
);
