import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { onPostgres } from "../support/database.js";
import { routeBody } from "../support/factories.js";
import { TOKENS, startHarness, waitFor } from "../support/harness.js";

const run = promisify(execFile);
const REPO = path.resolve(import.meta.dirname, "../..");
const TSC = path.join(REPO, "node_modules/typescript/bin/tsc");

interface LockEntry {
  dev?: boolean;
}

interface PackedFile {
  path: string;
}

/**
 * A lockfile for a project that depends on the tarball alone: the tarball's entry, and the
 * repository's locked versions of everything but development dependencies. `npm ci --offline`
 * then installs from npm's cache by integrity, with no registry look-up, and only the packages
 * the package's `dependencies` pull in: a run-time import of a development dependency fails.
 */
function consumerLock(tarball: string): object {
  const repoLock = JSON.parse(readFileSync(path.join(REPO, "package-lock.json"), "utf8")) as {
    packages: Record<string, LockEntry>;
  };
  const own = JSON.parse(readFileSync(path.join(REPO, "package.json"), "utf8")) as {
    version: string;
    dependencies: Record<string, string>;
  };
  const packages: Record<string, object> = {
    "": { name: "consumer", dependencies: { "appproxy-coordinator": `file:${tarball}` } },
    "node_modules/appproxy-coordinator": {
      version: own.version,
      resolved: `file:${tarball}`,
      dependencies: own.dependencies,
    },
  };
  for (const [where, entry] of Object.entries(repoLock.packages)) {
    if (where !== "" && !entry.dev) packages[where] = entry;
  }
  return { name: "consumer", lockfileVersion: 3, requires: true, packages };
}

/** A worker in plain JavaScript that prints every table it reaches, one JSON line each. */
const SYNC_MJS = `
import { WorkerClient } from "appproxy-coordinator/client";
import { RoutingTable } from "appproxy-coordinator";

const client = new WorkerClient({
  coordinatorUrl: process.env.COORDINATOR_URL,
  registrationToken: process.env.REGISTRATION_TOKEN,
  registration: { name: "packed-worker", advertised_host: "127.0.0.1", frontend_mode: "port",
    port_range: [20300, 20309] },
});
client.on("synced", (event) => {
  const ids = client.table.routes.map((route) => route.id);
  console.log(JSON.stringify({ ...event, ids, sameClass: typeof RoutingTable === "function" }));
});
client.on("error", (error) => console.error(error.message));
process.once("SIGTERM", () => client.stop().then(() => process.exit(0)));
await client.start();
`;

/** A TypeScript consumer of the declarations; the expected error proves they are not `any`. */
const CONSUMER_TS = `
import { WorkerClient, type RoutingTableView, type SyncedEvent } from "appproxy-coordinator/client";
import { tableDigest } from "appproxy-coordinator";

const client = new WorkerClient({
  coordinatorUrl: "http://127.0.0.1:6030",
  registrationToken: "token",
  registration: { name: "w1", advertised_host: "127.0.0.1", frontend_mode: "port" },
});
client.on("synced", (event: SyncedEvent) => {
  const table: RoutingTableView = client.table;
  const version: number = event.version;
  console.log(version, table.size, tableDigest([]));
});
// @ts-expect-error frontend_mode is "port" or "wildcard"
new WorkerClient({ coordinatorUrl: "", registrationToken: "", registration: { name: "w", advertised_host: "h", frontend_mode: "ports" } });
`;

// Packing and installing gives the same result on either database: it runs on the embedded pass.
describe.skipIf(onPostgres())("the packed package", () => {
  let dir: string;
  let files: string[];
  let harness: Awaited<ReturnType<typeof startHarness>>;
  const children: ChildProcess[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "appproxy-pack-"));
    // `npm pack` runs `prepare`, which builds dist/ from the current source.
    const [packed, started] = await Promise.all([
      run("npm", ["pack", "--json", "--pack-destination", dir], { cwd: REPO }),
      startHarness(),
    ]);
    harness = started;
    const [tarball] = JSON.parse(packed.stdout) as Array<{ filename: string; files: PackedFile[] }>;
    files = tarball!.files.map((f) => f.path);
    writeFileSync(
      path.join(dir, "package.json"),
      JSON.stringify({
        name: "consumer",
        private: true,
        type: "module",
        dependencies: { "appproxy-coordinator": `file:${tarball!.filename}` },
      }),
    );
    writeFileSync(
      path.join(dir, "package-lock.json"),
      JSON.stringify(consumerLock(tarball!.filename)),
    );
    await run("npm", ["ci", "--offline", "--ignore-scripts", "--no-audit", "--no-fund"], {
      cwd: dir,
    });
  }, 240_000);

  afterAll(async () => {
    for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
    await harness?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("holds the compiled code, its declarations and the docs, and nothing else", () => {
    expect(files).toEqual(
      expect.arrayContaining([
        "dist/src/client/index.js",
        "dist/src/client/index.d.ts",
        "dist/src/main.js",
        "README.md",
        "CHANGELOG.md",
      ]),
    );
    const allowed =
      /^(dist\/.+\.(js|d\.ts|js\.map)|docs\/.+|README\.md|CHANGELOG\.md|package\.json)$/;
    expect(files.filter((f) => !allowed.test(f))).toEqual([]);
    expect(files.filter((f) => /(^|\/)(test|bench)\/|\.test\.|^dist\/\.|data\//.test(f))).toEqual(
      [],
    );
  });

  it("a plain .mjs file imports the client and syncs its table from a coordinator", async () => {
    writeFileSync(path.join(dir, "sync.mjs"), SYNC_MJS);
    const child = spawn(process.execPath, ["sync.mjs"], {
      cwd: dir,
      env: {
        PATH: process.env.PATH ?? "",
        COORDINATOR_URL: harness.url,
        REGISTRATION_TOKEN: TOKENS.registration,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let errors = "";
    child.stderr!.on("data", (chunk: Buffer) => (errors += chunk.toString()));
    const synced: Array<{ version: number; ids: string[]; sameClass: boolean }> = [];
    createInterface({ input: child.stdout! }).on("line", (line) => synced.push(JSON.parse(line)));

    await waitFor(() => synced.length > 0 || child.exitCode !== null, 30_000, "a first sync");
    expect(errors).toBe("");
    expect(synced[0]).toMatchObject({ version: 0, ids: [], sameClass: true });

    const created = await harness.manager.post<{ id: string; version: number }>(
      "/routes?wait=applied",
      routeBody(),
    );
    expect(created.status).toBe(201);
    expect(created.headers.get("x-propagation")).toBe("applied");
    const reached = await waitFor(
      () => synced.find((table) => table.version === created.body.version),
      10_000,
      "the worker to print the new version",
    );
    expect(reached?.ids).toEqual([created.body.id]);

    child.kill("SIGTERM");
    await waitFor(() => child.exitCode !== null, 10_000, "the worker to stop");
    expect(child.exitCode).toBe(0);
  });

  it("a TypeScript file using the client type-checks against the declarations", async () => {
    writeFileSync(path.join(dir, "consumer.ts"), CONSUMER_TS);
    writeFileSync(
      path.join(dir, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "NodeNext",
          moduleResolution: "NodeNext",
          target: "ES2022",
          strict: true,
          noEmit: true,
          // Node's own declarations are not what is under test, and checking them takes seconds.
          skipLibCheck: true,
          // A consumer brings its own Node types; the package's declarations need them.
          typeRoots: [path.join(REPO, "node_modules/@types")],
          types: ["node"],
        },
        files: ["consumer.ts"],
      }),
    );
    const checked = await run(process.execPath, [TSC, "-p", "tsconfig.json"], { cwd: dir }).then(
      () => "",
      (error: { stdout?: string }) => error.stdout ?? String(error),
    );
    expect(checked).toBe("");
  });
});
