import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The package.json nearest above this module: the repository's, whether this runs as source
 * (src/ops/) or compiled (dist/src/ops/), or from an installed copy of the package.
 */
function ownPackageJson(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = path.join(dir, "package.json");
    if (existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("no package.json above the coordinator's modules");
    dir = parent;
  }
}

const ownPackage = JSON.parse(readFileSync(ownPackageJson(), "utf8")) as {
  name: string;
  version: string;
  description: string;
};

/** This coordinator's release, from package.json. */
export const SOFTWARE_VERSION = ownPackage.version;

/** The package's name, as `GET /` gives it. */
export const PACKAGE_NAME = ownPackage.name;

/** The package's one-line description. */
export const PACKAGE_DESCRIPTION = ownPackage.description;
