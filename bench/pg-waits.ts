/**
 * What the PostgreSQL backends serving one database are doing while a phase runs: every
 * SAMPLE_MS, pg_stat_activity's active backends of that database (the sampler's own excepted)
 * by wait event — none (on a CPU, or waiting for one), Lock (a row or transaction lock another
 * transaction holds), LWLock, IO (WALSync, WALWrite, DataFileRead…), Client (waiting for the
 * coordinator's next statement). A sampler, so a share, not a duration.
 */
import type pg from "pg";
import { sleep } from "./support.js";

const SAMPLE_MS = 10;

export interface WaitSampler {
  /** Ends sampling: samples taken, and each wait's share of active backend samples, largest first. */
  stop(): Promise<WaitShares>;
}

export interface WaitShares {
  samples: number;
  /** Active backends per sample, on average. */
  active: number;
  shares: Array<[wait: string, share: number]>;
}

export function sampleWaits(sql: pg.Client, database: string): WaitSampler {
  const counts = new Map<string, number>();
  let samples = 0;
  let active = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const { rows } = await sql.query<{ wait: string }>(
        `SELECT coalesce(wait_event_type || ':' || wait_event, 'CPU') AS wait
           FROM pg_stat_activity
          WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()`,
        [database],
      );
      samples += 1;
      for (const { wait } of rows) {
        counts.set(wait, (counts.get(wait) ?? 0) + 1);
        active += 1;
      }
      await sleep(SAMPLE_MS);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      const shares = [...counts.entries()]
        .map(([wait, n]): [string, number] => [wait, n / Math.max(1, active)])
        .sort((a, b) => b[1] - a[1]);
      return { samples, active: active / Math.max(1, samples), shares };
    },
  };
}
