import { chmodSync, mkdirSync, readdirSync } from "node:fs";
import path from "node:path";

const PRIVATE_DIR = 0o700;
const PRIVATE_FILE = 0o600;

/**
 * Makes `dataDir` readable by this user only, now and for every file written into it later.
 *
 * PGlite's file system layer gives the files it creates mode 0666 whatever the umask, so the
 * folder itself is what keeps them private: 0700 before the database opens. Its files are made
 * 0600 when the database has opened and again when it closes; a file PostgreSQL creates in
 * between is unreachable to others through the 0700 folder. The umask is narrowed too, for files
 * this process writes itself (it is the coordinator: nothing it writes is for other users).
 */
export function keepDataDirPrivate(dataDir: string): void {
  process.umask(process.umask() | 0o077);
  mkdirSync(dataDir, { recursive: true, mode: PRIVATE_DIR });
  tighten(dataDir);
}

function tighten(dir: string): void {
  chmodSync(dir, PRIVATE_DIR);
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const at = path.join(dir, entry.name);
    if (entry.isDirectory()) tighten(at);
    else if (entry.isFile()) chmodSync(at, PRIVATE_FILE);
  }
}
