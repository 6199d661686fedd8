import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import path from "node:path";

/** Another live process holds the embedded database's directory. */
export class DataDirInUse extends Error {
  constructor(
    readonly dir: string,
    readonly pid: number,
    lockFile: string,
  ) {
    super(
      `DATA_DIR ${dir} is in use by process ${pid}: the embedded database takes one process at a ` +
        `time (stop it first, or use DATABASE_URL to run several). If no such process runs, ` +
        `remove ${lockFile}.`,
    );
    this.name = "DataDirInUse";
  }
}

/** A process as a lock names it: its PID and, where the system tells, when it started. */
interface Owner {
  pid: number;
  /** Start time in clock ticks since boot (Linux /proc), so that a reused PID is told apart. */
  started: string | undefined;
}

function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 22, counted after the command name, which is in parentheses and may hold spaces.
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

function isAlive({ pid, started }: Owner): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists, under another user.
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const now = startTimeOf(pid);
  return started === undefined || now === undefined || now === started;
}

function ownerIn(lockFile: string): Owner | undefined {
  try {
    const [pid, started] = readFileSync(lockFile, "utf8").trim().split(/\s+/);
    const n = Number(pid);
    return Number.isSafeInteger(n) && n > 0 ? { pid: n, started } : undefined;
  } catch {
    return undefined;
  }
}

/** The directories this process holds: a second opening here is refused like another's. */
const heldHere = new Set<string>();

/**
 * Takes the embedded database's directory for this process. PGlite does not guard it, and a
 * second process writing to the same files loses data without an error, so a lock file beside
 * them names the owner (created exclusively). One left by a process that has gone (a crash,
 * SIGKILL, a restarted container whose new process got the same PID) is taken over. Returns the
 * release, which removes the file.
 */
export function lockDataDir(dir: string): () => void {
  const lockFile = path.join(dir, "pgdata.lock");
  if (heldHere.has(lockFile)) throw new DataDirInUse(dir, process.pid, lockFile);
  const me: Owner = { pid: process.pid, started: startTimeOf(process.pid) };
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(lockFile, "wx", 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = ownerIn(lockFile);
      if (owner !== undefined && owner.pid !== me.pid && isAlive(owner)) {
        throw new DataDirInUse(dir, owner.pid, lockFile);
      }
      // Left behind by a process that is gone (or half written): take it over.
      try {
        unlinkSync(lockFile);
      } catch {
        // another process removed it first; try again
      }
      continue;
    }
    try {
      writeSync(fd, `${me.pid}${me.started === undefined ? "" : ` ${me.started}`}\n`);
    } finally {
      closeSync(fd);
    }
    heldHere.add(lockFile);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      heldHere.delete(lockFile);
      if (ownerIn(lockFile)?.pid === me.pid) unlinkSync(lockFile);
    };
  }
  throw new Error(`could not take the lock ${lockFile}`);
}
