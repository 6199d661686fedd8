import { readdir, readFile } from "node:fs/promises";
import os from "node:os";
import { machineCpuTicks, processCpuSeconds } from "./support.js";

/** CPU seconds so far of every process named `postgres` (the server and its backends). */
async function postgresCpuSeconds(): Promise<number> {
  let seconds = 0;
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if ((await readFile(`/proc/${entry}/comm`, "utf8")).trim() !== "postgres") continue;
      seconds += await processCpuSeconds(Number(entry));
    } catch {
      // The process ended while it was being read.
    }
  }
  return seconds;
}

interface Snapshot {
  coordinator: number;
  postgres: number;
  generator: number;
  machine: { busy: number; total: number };
}

async function snapshot(coordinatorPid: number): Promise<Snapshot> {
  const usage = process.cpuUsage();
  return {
    coordinator: await processCpuSeconds(coordinatorPid),
    postgres: await postgresCpuSeconds(),
    generator: (usage.user + usage.system) / 1e6,
    machine: await machineCpuTicks(),
  };
}

/** Where one operation's CPU went, in µs, and how busy the machine's cores were meanwhile. */
export interface CpuShares {
  coordinator: number;
  postgres: number;
  generator: number;
  /** Everything else the machine did meanwhile (kernel work not charged to a process included). */
  rest: number;
  /** Share of all cores busy, 0…1. */
  busy: number;
  /** Operations per second at which this cost would keep every core busy. */
  ceiling: number;
}

/**
 * Measures the CPU a piece of load costs each process that serves it: the coordinator, every
 * PostgreSQL process on the machine, and this load generator, from /proc (Linux, 10 ms ticks:
 * measure thousands of operations, not a few).
 */
export async function cpuShares(
  coordinatorPid: number,
  operations: number,
  load: () => Promise<void>,
): Promise<CpuShares> {
  const before = await snapshot(coordinatorPid);
  await load();
  const after = await snapshot(coordinatorPid);
  const us = (seconds: number) => (seconds * 1e6) / operations;
  const ticks = after.machine.total - before.machine.total;
  const busySeconds = (after.machine.busy - before.machine.busy) / 100;
  const coordinator = us(after.coordinator - before.coordinator);
  const postgres = us(after.postgres - before.postgres);
  const generator = us(after.generator - before.generator);
  const all = us(busySeconds);
  return {
    coordinator,
    postgres,
    generator,
    rest: Math.max(0, all - coordinator - postgres - generator),
    busy: ticks > 0 ? (after.machine.busy - before.machine.busy) / ticks : 0,
    ceiling: all > 0 ? (os.cpus().length * 1e6) / all : Infinity,
  };
}
