/**
 * etcd beside `bench:proxy`'s time to reachable: with `watchers` watches open (one key prefix per
 * simulated worker, in the fleet process), `samples` puts one after another, each timed from the
 * put sent to the watcher holding the value. The coordinator's figure goes further (the route is
 * served and a request through the worker answered 200), so the two bound what a change costs
 * from the control plane to the data plane's door.
 */
import { etcdPut, startEtcd } from "./etcd-baseline.js";
import { startFleet } from "./fleet.js";
import { nowMs, summarize, type Summary } from "./support.js";
import { sampleRoute } from "./ws-baseline.js";

/** Far above any sequence number of the other phases: receipts are told apart by it. */
const FIRST_SEQ = 50_000_000;

export async function etcdSentToReceipt(
  watchers: number,
  samples: number,
): Promise<{ version: string; summary: Summary }> {
  const etcd = await startEtcd();
  const fleet = await startFleet();
  try {
    await fleet.call("watchEtcd", { url: etcd.url, count: watchers }, 120_000);
    const times: number[] = [];
    for (let i = 0; i < samples; i++) {
      const seq = FIRST_SEQ + i;
      const watcher = i % watchers;
      const sentAt = nowMs();
      await etcdPut(
        etcd.url,
        watcher,
        `r${i % 4}`,
        JSON.stringify({ seq, route: sampleRoute(seq, String(watcher), seq) }),
      );
      if ((await fleet.awaitReceipts([seq], 10_000)) > 0) continue;
      times.push(fleet.receipts.get(seq)! - sentAt);
    }
    return { version: etcd.version, summary: summarize(times) };
  } finally {
    await fleet.stop();
    await etcd.stop();
  }
}
