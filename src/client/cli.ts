/**
 * A proxy worker without a proxy: registers, follows its routing table and prints every change.
 * Useful to watch what the coordinator tells a worker, and as a sample of WorkerClient.
 */
import { USAGE, parseWorkerCliArgs } from "./cli-args.js";
import {
  changeLines,
  connectedLine,
  disconnectedLine,
  registeredLine,
  stoppedLine,
  syncedLine,
} from "./cli-output.js";
import { WorkerClient } from "./worker-client.js";

/** Exit codes: 0 stopped on a signal, 1 stopped by the coordinator or an error, 2 bad usage. */
const EXIT_USAGE = 2;
const EXIT_FAILURE = 1;
/** If something still holds the event loop after stop(), leave anyway. */
const EXIT_GRACE_MS = 5000;

function main(): void {
  const parsed = parseWorkerCliArgs(process.argv.slice(2), process.env);
  if (!parsed.ok) {
    if (parsed.help) {
      console.log(USAGE);
      return;
    }
    for (const problem of parsed.problems) console.error(`error: ${problem}`);
    console.error(USAGE);
    process.exitCode = EXIT_USAGE;
    return;
  }

  const client = new WorkerClient(parsed.config);
  client.on("registered", (event) => console.log(registeredLine(event)));
  client.on("connected", (event) => console.log(connectedLine(event)));
  client.on("change", (change) => {
    for (const line of changeLines(change)) console.log(line);
  });
  client.on("synced", (event) => console.log(syncedLine(event)));
  client.on("disconnected", (event) => console.log(disconnectedLine(event)));
  client.on("error", (error) => console.error(`error: ${error.message}`));
  client.on("stopped", (event) => {
    console.log(stoppedLine(event));
    if (event.cause !== "stopped") process.exitCode = EXIT_FAILURE;
    setTimeout(() => process.exit(), EXIT_GRACE_MS).unref();
  });

  const shutdown = (): void => {
    void client.stop();
  };
  process.once("SIGINT", shutdown);
  process.once("SIGTERM", shutdown);

  client.start().catch((error: unknown) => {
    // The `stopped` listener has already said why; only an unexpected rejection lands here alone.
    if (!(error instanceof Error)) console.error(`error: ${String(error)}`);
    process.exitCode = EXIT_FAILURE;
  });
}

main();
