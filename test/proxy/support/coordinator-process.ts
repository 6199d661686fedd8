/**
 * The coordinator as a child process, for the tests that kill it: started the way an operator
 * starts it (`src/main.ts` under tsx, settings by environment) with the tests' tokens, and
 * restartable on the same port, where its workers look for it.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { TOKENS, waitFor } from "../../support/harness.js";
import { freePort } from "../../support/net.js";

export interface CoordinatorProcess {
  readonly url: string;
  readonly port: number;
  /** SIGKILL, and wait for the exit. */
  kill(): Promise<void>;
  /** SIGTERM (SIGKILL after 20 s), and wait for the exit. */
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();

/** Kills every coordinator still running (afterAll's safety net). */
export async function killCoordinators(): Promise<void> {
  await Promise.all(
    [...running].map(
      (child) =>
        new Promise<void>((resolve) => {
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/**
 * Starts the coordinator with `env` (DATABASE_URL or DATA_DIR) on `port` (a free one when not
 * given) and waits until /readyz answers 200.
 */
export async function startCoordinatorProcess(
  env: Record<string, string>,
  port?: number,
): Promise<CoordinatorProcess> {
  const listen = port ?? (await freePort());
  const child = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    env: {
      ...process.env,
      PORT: String(listen),
      HOST: "127.0.0.1",
      LOG_LEVEL: "error",
      MANAGER_TOKENS: TOKENS.manager,
      REGISTRATION_TOKENS: TOKENS.registration,
      ADMIN_TOKENS: TOKENS.admin,
      TOKEN_SECRET: TOKENS.secret,
      ...env,
    },
    stdio: ["ignore", "ignore", "pipe"],
  });
  running.add(child);
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) =>
    child.once("exit", () => {
      running.delete(child);
      resolve();
    }),
  );
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  const url = `http://127.0.0.1:${listen}`;
  await waitFor(
    async () => {
      if (gone()) throw new Error(`coordinator exited: ${stderr}`);
      try {
        return (await fetch(`${url}/readyz`)).status === 200;
      } catch {
        return false;
      }
    },
    120_000,
    "the coordinator to be ready",
  );
  return {
    url,
    port: listen,
    kill: async () => {
      if (!gone()) child.kill("SIGKILL");
      await exited;
    },
    stop: async () => {
      if (!gone()) {
        child.kill("SIGTERM");
        const killer = setTimeout(() => child.kill("SIGKILL"), 20_000);
        await exited;
        clearTimeout(killer);
      }
    },
  };
}
