/**
 * The worker's command line (docs/worker.md, "Settings"): every setting as `--flag value` or
 * `--flag=value`, a flag winning over its variable, `--help` listing them all, and anything
 * else an error with exit code 2, as `npm run worker` runs it.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  flagOf,
  parseSettingFlags,
  settingsUsage,
  withFlagNames,
} from "../../src/proxy/settings-flags.js";
import { SETTING_VARIABLES, parseProxySettings } from "../../src/proxy/settings.js";
import { TOKENS, startHarness } from "../support/harness.js";
import { freePortRange, removeDir, spawnWorker, waitReady, type WorkerProcess } from "./support.js";
import { loopbackAddress } from "./support/port-worker.js";
import { workerIdOf } from "./support/routes.js";

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * `npm run worker -- <args>` with only `env` (and PATH) in its environment, to its exit; one
 * still running after 30 s (a worker that started when it should not have) is killed.
 */
function runWorker(args: string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/proxy/main.ts", ...args], {
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const killer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("exit", (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe("the worker's flags", () => {
  it("has a flag for every variable docs/worker.md names, and --help lists each", () => {
    const documented = readFileSync("docs/worker.md", "utf8");
    const table = documented.slice(documented.indexOf("## Settings"));
    const rows = table.slice(0, table.indexOf("\n\n", table.indexOf("| variable")));
    const variables = [...rows.matchAll(/`([A-Z][A-Z_]+)`/g)].map((match) => match[1]);
    const names = SETTING_VARIABLES.map(({ name }) => name);
    expect(new Set(names)).toEqual(new Set(variables));
    const usage = settingsUsage();
    for (const name of names) {
      expect(usage).toContain(flagOf(name));
      expect(rows).toContain(`\`${flagOf(name)}\``);
    }
  });

  it("reads --flag value and --flag=value, and --dedicated alone", () => {
    expect(
      parseSettingFlags([
        "--worker-name",
        "w1",
        "--port-range=10200:10299",
        "--dedicated",
        "--drain-s",
        "7",
      ]),
    ).toEqual({
      kind: "settings",
      values: { WORKER_NAME: "w1", PORT_RANGE: "10200:10299", DEDICATED: "true", DRAIN_S: "7" },
    });
    expect(parseSettingFlags(["--dedicated=false"])).toEqual({
      kind: "settings",
      values: { DEDICATED: "false" },
    });
  });

  it("wins over the environment", () => {
    const env = { REGISTRATION_TOKEN: "t", WORKER_NAME: "from-env", PORT_RANGE: "1:2" };
    const flags = parseSettingFlags(["--worker-name=from-flag", "--drain-s", "3"]);
    if (flags.kind !== "settings") throw new Error(flags.kind);
    const parsed = parseProxySettings({ ...env, DRAIN_S: "9", ...flags.values });
    if (!parsed.ok) throw new Error(parsed.problems.join("; "));
    expect(parsed.settings.name).toBe("from-flag");
    expect(parsed.settings.drainS).toBe(3);
  });

  it("samples the event-loop delay every 20 ms unless told otherwise, 1 to 1000 ms", () => {
    const env = { REGISTRATION_TOKEN: "t", WORKER_NAME: "w", PORT_RANGE: "1:2" };
    const resolution = (value?: string) => {
      const parsed = parseProxySettings(
        value === undefined ? env : { ...env, EVENT_LOOP_RESOLUTION_MS: value },
      );
      return parsed.ok ? parsed.settings.eventLoopResolutionMs : parsed.problems.join("; ");
    };
    expect(resolution()).toBe(20);
    expect(resolution("10")).toBe(10);
    for (const bad of ["0", "1001", "often"]) {
      expect(resolution(bad)).toMatch(/EVENT_LOOP_RESOLUTION_MS/);
    }
  });

  it("refuses unknown flags, stray arguments and missing values", () => {
    const problems = (argv: string[]) => {
      const parsed = parseSettingFlags(argv);
      return parsed.kind === "error" ? parsed.problems : [];
    };
    expect(problems(["--worker-nmae", "w1"])).toEqual([
      "unknown option --worker-nmae (see --help)",
    ]);
    expect(problems(["w1"])[0]).toMatch(/^unexpected argument "w1"/);
    expect(problems(["--worker-name"])).toEqual(["--worker-name needs a value (see --help)"]);
    expect(parseSettingFlags(["-h"])).toEqual({ kind: "help" });
  });

  it("names the flag in a problem with a value it gave", () => {
    expect(withFlagNames('"DRAIN_S" must be a number', { DRAIN_S: "x" })).toBe(
      "DRAIN_S (--drain-s) must be a number",
    );
    expect(withFlagNames('"DRAIN_S" must be a number', {})).toBe('"DRAIN_S" must be a number');
  });
});

describe("npm run worker with flags", () => {
  it("prints --help and exits 0", async () => {
    const run = await runWorker(["--help"]);
    expect(run.code).toBe(0);
    for (const { name } of SETTING_VARIABLES) expect(run.stdout).toContain(flagOf(name));
  });

  it("exits 2 on an unknown flag, saying which", async () => {
    const run = await runWorker(["--port-rnage", "1:2"], { REGISTRATION_TOKEN: "t" });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("unknown option --port-rnage");
  });

  it("exits 2 on a bad flag value even where the variable is good, naming the flag", async () => {
    const run = await runWorker(["--drain-s=soon"], {
      REGISTRATION_TOKEN: "t",
      WORKER_NAME: "w1",
      PORT_RANGE: "20000:20001",
      DRAIN_S: "5",
    });
    expect(run.code).toBe(2);
    expect(run.stderr).toContain("DRAIN_S (--drain-s) must be a number");
  });

  describe("serving", () => {
    let h: Awaited<ReturnType<typeof startHarness>>;
    let worker: WorkerProcess | undefined;

    beforeAll(async () => {
      h = await startHarness({ WORKER_LOST_AFTER_S: "3600" });
    }, 60_000);

    afterAll(async () => {
      await worker?.kill();
      if (worker) removeDir(worker.dataDir);
      await h?.close();
    });

    it("starts from its flags, the flags winning over the environment", async () => {
      const host = loopbackAddress();
      const [first, last] = await freePortRange([host], 2);
      worker = await spawnWorker(
        { BIND_HOST: host, WORKER_NAME: "w-from-env", PORT_RANGE: "not-a-range" },
        {
          args: [
            "--coordinator-url",
            h.url,
            `--registration-token=${TOKENS.registration}`,
            "--worker-name",
            "w-from-flag",
            `--port-range=${first}:${last}`,
          ],
        },
      );
      await waitReady(worker, 120_000);
      await workerIdOf(h.manager, "w-from-flag");
      const listed = await h.manager.get<{ items: Array<{ name: string }> }>("/workers");
      expect(listed.body.items.map((item) => item.name)).not.toContain("w-from-env");
      expect(await worker.stop()).toBe(0);
    });

    it("exits 1 with one error line when the coordinator refuses its registration token", async () => {
      const host = loopbackAddress();
      const [first, last] = await freePortRange([host], 2);
      const dataDir = mkdtempSync(path.join(tmpdir(), "appproxy-refused-"));
      try {
        const run = await runWorker([], {
          COORDINATOR_URL: h.url,
          REGISTRATION_TOKEN: "not-a-registration-token",
          WORKER_NAME: "w-refused",
          BIND_HOST: host,
          PORT_RANGE: `${first}:${last}`,
          OPS_PORT: "0",
          DRAIN_S: "0",
          DATA_DIR: dataDir,
        });
        expect(run.code, run.stdout + run.stderr).toBe(1);
        expect(run.stdout).toContain('"cause":"registration_refused"');
        expect(run.stderr).not.toMatch(/Error|at /);
      } finally {
        removeDir(dataDir);
      }
    });
  });
});
