import { randomBytes } from "node:crypto";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";

/** A fresh DNS label: the app's name (cleaned) and 10 random characters, 63 at most. */
export function freshSubdomain(app: string): string {
  const prefix = app
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 40)
    .replace(/-+$/g, "");
  const bytes = randomBytes(10);
  let suffix = "";
  for (const b of bytes) suffix += ALPHABET[b % ALPHABET.length];
  return prefix ? `${prefix}-${suffix}` : `r${suffix}`;
}
