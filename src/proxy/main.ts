/**
 * `npm run worker`: a proxy worker serving its routes, configured by its environment and by
 * command-line flags that win over it (docs/worker.md). `npm run worker -- --print-table …` runs
 * the table-printing client instead.
 */
import { createLogger } from "../logger.js";
import { parseProxySettings } from "./settings.js";
import { parseSettingFlags, settingsUsage, withFlagNames } from "./settings-flags.js";
import { startProxyWorker } from "./worker.js";

const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;
/** If something still holds the event loop after stop(), leave anyway. */
const EXIT_GRACE_MS = 5000;

async function main(): Promise<void> {
  const printTable = process.argv.indexOf("--print-table");
  if (printTable !== -1) {
    process.argv.splice(printTable, 1);
    await import("../client/cli.js");
    return;
  }
  const flags = parseSettingFlags(process.argv.slice(2));
  if (flags.kind === "help") {
    console.log(settingsUsage());
    return;
  }
  if (flags.kind === "error") {
    for (const problem of flags.problems) console.error(`error: ${problem}`);
    process.exitCode = EXIT_USAGE;
    return;
  }
  const parsed = parseProxySettings({ ...process.env, ...flags.values });
  if (!parsed.ok) {
    for (const problem of parsed.problems) {
      console.error(`error: ${withFlagNames(problem, flags.values)}`);
    }
    process.exitCode = EXIT_USAGE;
    return;
  }
  const settings = parsed.settings;
  const logger = createLogger(settings.logLevel);
  let stopping = false;
  const exit = (code: number): void => {
    process.exitCode = code;
    setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
  };
  const worker = await startProxyWorker(settings, {
    logger,
    onFatal: () => {
      if (stopping) return;
      stopping = true;
      void worker.stop().then(() => exit(EXIT_FAILURE));
    },
  });
  logger.info("worker serving", {
    name: settings.name,
    traffic: worker.addresses.traffic
      .map((address) => `${address.address}:${address.port}`)
      .join(" "),
    ops: `${worker.addresses.ops.address}:${worker.addresses.ops.port}`,
  });
  const shutdown = (): void => {
    if (stopping) return;
    stopping = true;
    logger.info("stopping: draining connections", { drain_s: settings.drainS });
    void worker.stop().then(() => exit(0));
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
  process.on("SIGHUP", () => worker.reloadTls());
}

main().catch((error: unknown) => {
  console.error(`error: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = EXIT_FAILURE;
});
