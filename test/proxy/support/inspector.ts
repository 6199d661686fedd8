/**
 * What the leak test reads of a worker process: its heap after collecting garbage (over the
 * DevTools protocol, test/support/devtools.ts) and its open descriptors.
 */
import { readdirSync } from "node:fs";
import { evaluateAfterGc } from "../../support/devtools.js";

export function heapAfterGc(inspectUrl: string): Promise<number> {
  return evaluateAfterGc<number>(inspectUrl, "process.memoryUsage().heapUsed");
}

/** The process's open file descriptors (sockets, listeners, files), from /proc. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}
