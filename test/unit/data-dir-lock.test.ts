import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { DataDirInUse, lockDataDir } from "../../src/db/data-dir-lock.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), "appproxy-lock-"));
  dirs.push(dir);
  return dir;
}

/** The PID of a process that has already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], {
    encoding: "utf8",
  });
  return Number(child.stdout);
}

describe("the embedded database's directory lock", () => {
  it("is held by one owner at a time, and free again once released", () => {
    const dir = dataDir();
    const release = lockDataDir(dir);
    const lockFile = path.join(dir, "pgdata.lock");
    expect(readFileSync(lockFile, "utf8")).toMatch(new RegExp(`^${process.pid}( \\d+)?\n$`));
    expect(() => lockDataDir(dir)).toThrow(DataDirInUse);
    expect(() => lockDataDir(dir)).toThrow(`in use by process ${process.pid}`);
    release();
    expect(existsSync(lockFile)).toBe(false);
    release(); // twice is harmless
    lockDataDir(dir)();
  });

  it("takes over a lock left by a process that is gone, or one that names no process", () => {
    const dir = dataDir();
    const lockFile = path.join(dir, "pgdata.lock");
    const leftovers = [
      `${deadPid()}\n`,
      "",
      "not a pid",
      // This very PID, from an earlier process (a restarted container's coordinator is PID 1 again).
      `${process.pid} 1\n`,
      // A live PID that started at another time than the owner did: the PID was reused.
      "1 999999999999\n",
    ];
    for (const leftover of leftovers) {
      writeFileSync(lockFile, leftover);
      const release = lockDataDir(dir);
      expect(readFileSync(lockFile, "utf8").split(" ")[0]!.trim()).toBe(String(process.pid));
      release();
    }
  });

  it("is refused while another live process owns it, naming that process", () => {
    const dir = dataDir();
    // PID 1 is always alive (init); as if it held the directory.
    writeFileSync(path.join(dir, "pgdata.lock"), "1\n");
    expect(() => lockDataDir(dir)).toThrow(/in use by process 1:/);
    expect(readFileSync(path.join(dir, "pgdata.lock"), "utf8")).toBe("1\n");
  });
});
