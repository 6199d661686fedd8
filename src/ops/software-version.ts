import { readFileSync } from "node:fs";

/** This coordinator's release, from package.json. */
export const SOFTWARE_VERSION = (
  JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;
