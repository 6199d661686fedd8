import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/**
 * Installs Debian package `name` when `binary` is missing (benchmarks run as root on a Debian
 * machine, as .ci/run does for Chromium); throws with the command to run where that fails.
 */
export function ensureDebianPackage(binary: string, name: string): void {
  if (existsSync(binary)) return;
  console.error(`installing ${name} from Debian (for ${binary})`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  const install = () =>
    spawnSync("apt-get", ["install", "-y", "--no-install-recommends", name], {
      env,
      stdio: ["ignore", "ignore", "inherit"],
    });
  if (install().status !== 0) {
    spawnSync("apt-get", ["update"], { env, stdio: "ignore" });
    install();
  }
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: apt-get update && apt-get install -y ${name}`);
  }
}
