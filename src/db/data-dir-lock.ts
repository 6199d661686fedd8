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

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: it exists, under another user.
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

function ownerOf(lockFile: string): number | undefined {
  try {
    const pid = Number(readFileSync(lockFile, "utf8").trim());
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Takes the embedded database's directory for this process. PGlite does not guard it, and a
 * second process writing to the same files loses data without an error, so a lock file beside
 * them names the owner's PID (created exclusively); one left by a process that has gone (a crash,
 * SIGKILL) is taken over. Returns the release, which removes the file if this process still owns it.
 */
export function lockDataDir(dir: string): () => void {
  const lockFile = path.join(dir, "pgdata.lock");
  for (let attempt = 0; attempt < 3; attempt++) {
    let fd: number;
    try {
      fd = openSync(lockFile, "wx", 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
      const owner = ownerOf(lockFile);
      if (owner !== undefined && isAlive(owner)) throw new DataDirInUse(dir, owner, lockFile);
      // Left behind by a process that is gone (or half written): take it over.
      try {
        unlinkSync(lockFile);
      } catch {
        // another process removed it first; try again
      }
      continue;
    }
    try {
      writeSync(fd, `${process.pid}\n`);
    } finally {
      closeSync(fd);
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (ownerOf(lockFile) === process.pid) unlinkSync(lockFile);
    };
  }
  throw new Error(`could not take the lock ${lockFile}`);
}
