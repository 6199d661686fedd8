import { resolveSecrets } from "./auth/secrets.js";
import { ConfigError, loadConfig, type Config } from "./config.js";
import { startCoordinator } from "./coordinator.js";
import { createLogger } from "./logger.js";

let config: Config;
let resolved: ReturnType<typeof resolveSecrets>;
try {
  config = loadConfig();
  resolved = resolveSecrets(config);
} catch (error) {
  if (error instanceof ConfigError) {
    for (const problem of error.problems) console.error(problem);
    process.exit(1);
  }
  throw error;
}

const logger = createLogger(config.logLevel);
const NEVER_SHOWN = new Set(["TOKEN_SECRET", "ACCESS_TOKEN_KEYS", "BACKENDAI_API_SECRET"]);
const { secrets, generated } = resolved;
// Shown once, on plain lines outside the JSON log, by the start-up that generated them.
for (const { setting, value } of generated) {
  // Secrets that are not tokens someone pastes elsewhere stay in the file, never on a screen.
  if (NEVER_SHOWN.has(setting)) continue;
  process.stdout.write(`generated ${setting} (kept in ${config.dataDir}/secrets.json): ${value}\n`);
}

const FORCE_EXIT_MS = 15_000;

try {
  const coordinator = await startCoordinator({ config, secrets, logger });
  const shutdown = (signal: string) => {
    logger.info("shutting down", { signal });
    setTimeout(() => {
      logger.error("shutdown took too long; exiting");
      process.exit(1);
    }, FORCE_EXIT_MS).unref();
    coordinator.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error("shutdown failed", { error: String(error) });
        process.exit(1);
      },
    );
  };
  process.once("SIGTERM", () => shutdown("SIGTERM"));
  process.once("SIGINT", () => shutdown("SIGINT"));
} catch (error) {
  logger.error("start-up failed", {
    error: error instanceof Error ? error.message : String(error),
  });
  process.exit(1);
}
