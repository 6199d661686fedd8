/**
 * `npm run seed`: loads the demo fleet of seeds/demo.ts into the configured database (DATABASE_URL,
 * or the embedded one in DATA_DIR), migrating it first. Safe to run again: nothing is duplicated.
 * On the embedded database, stop the coordinator first: only one process may open DATA_DIR, and
 * the seed refuses to start while another holds it.
 */
import { ConfigError, loadConfig, type Config } from "../src/config.js";
import { migrateToLatest, openForTool } from "../src/db/database.js";
import { isAppError } from "../src/errors.js";
import { Committer } from "../src/versioning/committer.js";
import { loadDemoFleet, type DemoFleet } from "./demo.js";

function readConfig(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    for (const problem of error.problems) console.error(problem);
    process.exit(1);
  }
}

function report(fleet: DemoFleet, kind: string): void {
  console.log(`demo fleet loaded (${kind} database), routing version ${fleet.version}`);
  const names = new Map<string, string>();
  for (const { worker, created } of fleet.workers) {
    names.set(worker.id, worker.name);
    const where =
      worker.frontend_mode === "port"
        ? `ports ${worker.port_range?.join("-")}`
        : `*.${worker.wildcard_domain}`;
    console.log(
      `  worker ${worker.name} ${worker.id} ${created ? "created" : "already registered"} ` +
        `(${worker.frontend_mode}, ${where}, status ${worker.status})`,
    );
  }
  const state = fleet.routesCreated ? "created" : "already present";
  for (const route of fleet.routes) {
    console.log(
      `  route ${route.id} ${state}: ${route.app} (${route.protocol}, ${route.mode}) on ` +
        `${names.get(route.worker_id) ?? route.worker_id} at ${route.url} ` +
        `-> ${route.upstreams.map((u) => `${u.host}:${u.port}`).join(", ")} (v${route.version})`,
    );
  }
}

const config = readConfig();
const db = await openForTool(config);
try {
  await migrateToLatest(db.knex);
  report(await loadDemoFleet(db.knex, new Committer(db.knex)), db.kind);
} catch (error) {
  if (!isAppError(error)) throw error;
  // A refusal of the service (e.g. 409: a demo name or id already used differently): say it plainly.
  console.error(`seed refused (${error.status} ${error.title}): ${error.message}`);
  for (const problem of error.extra.errors ?? []) {
    console.error(`  ${problem.path}: ${problem.message}`);
  }
  process.exitCode = 1;
} finally {
  await db.close();
}
