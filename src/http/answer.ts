import type { Response } from "express";
import type { PropagationQuery } from "../shared/schema-parts.js";
import type { Committed } from "../versioning/change.js";
import type { PropagationWatch } from "../versioning/propagation.js";

export const DEFAULT_WAIT_MS = 5000;

/**
 * Answers a mutation: sets X-Routing-Version and, with `wait=applied`, holds the answer until
 * every worker the change touched acknowledged it, or answers 202 with X-Propagation: pending.
 */
export async function answerMutation(
  res: Response,
  watch: PropagationWatch,
  committed: Committed<unknown>,
  query: PropagationQuery,
  status: number,
  body?: unknown,
): Promise<void> {
  res.setHeader("X-Routing-Version", String(committed.version));
  let finalStatus = status;
  const waits = query.wait === "applied" && committed.workerIds.length > 0;
  if (waits) {
    const applied = await watch.waitApplied(
      committed.version,
      committed.workerIds,
      query.timeout_ms ?? DEFAULT_WAIT_MS,
    );
    if (!applied) {
      res.setHeader("X-Propagation", "pending");
      finalStatus = 202;
    } else res.setHeader("X-Propagation", "applied");
  }
  if (body === undefined) res.status(finalStatus === 202 ? 202 : status).end();
  else sendJson(res, finalStatus, body);
  committed.timing?.answered(receivedAt(res), waits);
}

/** When the request arrived (performance.now()), as the request log noted it. */
function receivedAt(res: Response): number | undefined {
  const at: unknown = res.locals.receivedAt;
  return typeof at === "number" ? at : undefined;
}

/**
 * Writes `body` as a JSON answer, as `res.json` does but without its per-answer charset and
 * freshness handling, which a mutation's answer never needs.
 */
export function sendJson(res: Response, status: number, body: unknown): void {
  const payload = Buffer.from(JSON.stringify(body));
  res.statusCode = status;
  res.setHeader("Content-Type", "application/json; charset=utf-8");
  res.setHeader("Content-Length", payload.length);
  res.end(payload);
}
