import { readHead } from "../sync/changelog.js";
import type { Committer } from "../versioning/committer.js";

/** Rows deleted per statement, so that a large trim never holds the lock for long. */
const TRIM_CHUNK = 20_000;

/**
 * Keeps the last `retention` versions of the change log. Returns the new floor when it moved:
 * a stream resuming from below it gets a snapshot.
 */
export async function trimChangelog(
  committer: Committer,
  retention: number,
): Promise<number | undefined> {
  const { result } = await committer.submit("changelog.trim", async ({ tx }) => {
    const { version, floor } = await readHead(tx);
    const target = version - retention;
    if (target <= floor) return undefined;
    const through = Math.min(target, floor + TRIM_CHUNK);
    await tx("change_entries").where("version", "<=", through).delete();
    await tx("changes").where("version", "<=", through).delete();
    await tx("routing_state").where({ id: 1 }).update({ changelog_floor: through });
    return through;
  });
  return result;
}
