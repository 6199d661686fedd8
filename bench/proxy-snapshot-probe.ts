/**
 * A proxy worker in this very process (`startProxyWorker`, settings from the environment as
 * `npm run worker` reads them) with the event loop watched: `perf_hooks.monitorEventLoopDelay`
 * at 1 ms resolution from the moment it is started (listeners bound, kept table served) until it
 * serves version `BENCH_TARGET_VERSION`; its start is watched apart. Prints one JSON line: the
 * longest hold of the loop and the worker's own apply-time metric.
 * `BENCH_TARGET_VERSION=0` only starts the worker, waits until it is ready, and stops it.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { createLogger } from "../src/logger.js";
import { parseProxySettings } from "../src/proxy/settings.js";
import { startProxyWorker } from "../src/proxy/worker.js";

const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

async function main(): Promise<void> {
  const parsed = parseProxySettings(process.env);
  if (!parsed.ok) throw new Error(parsed.problems.join("; "));
  const target = Number(process.env.BENCH_TARGET_VERSION ?? 0);
  // Starting (loading the kept table, binding, spawning the control thread) is watched apart
  // from taking in the change: the target is about a worker that serves traffic meanwhile.
  const startup = monitorEventLoopDelay({ resolution: 1 });
  startup.enable();
  const started = nowMs();
  const worker = await startProxyWorker(parsed.settings, {
    logger: createLogger(parsed.settings.logLevel),
  });
  startup.disable();
  if (target > 0 && worker.status().version >= target) {
    throw new Error("the change was taken in before the watch began: the figure would say nothing");
  }
  const loop = monitorEventLoopDelay({ resolution: 1 });
  // Ticks of its own as well: the histogram's max is the longest wait of a 1 ms timer.
  let lastTick = nowMs();
  let longestGap = 0;
  const ticker = setInterval(() => {
    const now = nowMs();
    longestGap = Math.max(longestGap, now - lastTick);
    lastTick = now;
  }, 1);
  loop.enable();
  const deadline = Date.now() + 120_000;
  for (;;) {
    const status = worker.status();
    if (status.ready && status.version >= target) break;
    if (Date.now() > deadline) throw new Error(`worker not at version ${target} within 120 s`);
    await new Promise((r) => setTimeout(r, 5));
  }
  const servedAfterMs = nowMs() - started;
  // The table is also written to DATA_DIR shortly after it is applied: that is part of the hold.
  await new Promise((r) => setTimeout(r, 1000));
  loop.disable();
  clearInterval(ticker);
  const metrics = await fetch(
    `http://${worker.addresses.ops.address}:${worker.addresses.ops.port}/metrics`,
  );
  const text = await metrics.text();
  const sample = (name: string) =>
    Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  const routes = worker.status().routes;
  await worker.stop();
  process.stdout.write(
    `${JSON.stringify({
      routes,
      servedAfterMs,
      loopMaxMs: loop.max / 1e6,
      loopP99Ms: loop.percentile(99) / 1e6,
      startupLoopMaxMs: startup.max / 1e6,
      longestTimerGapMs: longestGap,
      applySecondsSum: sample("appproxy_worker_apply_seconds_sum"),
      applyCount: sample("appproxy_worker_apply_seconds_count"),
    })}\n`,
  );
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
