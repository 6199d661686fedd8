/**
 * What a benchmark started (child processes, etcd, databases) is stopped however the script
 * ends: normally, by an exception, or by SIGINT/SIGTERM.
 */

type Cleanup = () => Promise<void> | void;

const pending: Array<{ what: string; run: Cleanup }> = [];
let shuttingDown = false;

/** Registers `run` to undo something just started; the returned function runs it early, once. */
export function deferCleanup(what: string, run: Cleanup): () => Promise<void> {
  const entry = { what, run };
  if (shuttingDown) {
    // Started while the script is being stopped: undo it at once.
    void Promise.resolve()
      .then(run)
      .catch(() => undefined);
    return async () => undefined;
  }
  pending.push(entry);
  return async () => {
    const at = pending.indexOf(entry);
    if (at < 0) return;
    pending.splice(at, 1);
    await entry.run();
  };
}

/** Runs every registered cleanup, newest first; one that fails does not stop the others. */
export async function cleanUpAll(): Promise<void> {
  while (pending.length > 0) {
    const entry = pending.pop()!;
    try {
      await entry.run();
    } catch (error) {
      console.error(`cleanup of ${entry.what} failed:`, error);
    }
  }
}

/** Runs a benchmark's main function, then cleans up and exits with its outcome. */
export async function runBenchmark(main: () => Promise<void>): Promise<never> {
  const shutDown = (code: number) => {
    if (shuttingDown) return;
    shuttingDown = true;
    void cleanUpAll().finally(() => process.exit(code));
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (!shuttingDown) console.error(`\n${signal}: stopping what the benchmark started`);
    shutDown(130);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  // Requests still in flight fail once their server is stopped: that must not cut the cleanup.
  process.on("unhandledRejection", (error) => {
    if (shuttingDown) return;
    console.error("benchmark failed:", error);
    shutDown(1);
  });
  let code = 0;
  try {
    await main();
  } catch (error) {
    if (!shuttingDown) console.error("benchmark failed:", error);
    code = 1;
  }
  if (shuttingDown) return new Promise<never>(() => undefined);
  shuttingDown = true;
  await cleanUpAll();
  process.exit(code);
}
