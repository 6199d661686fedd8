import type { Knex } from "knex";

/**
 * The NOTIFY notices between coordinator instances sharing one database: every channel, and
 * every payload built (`*Payload`, `notify*`) and read back (`parseNotice`) here, nowhere else.
 */
export const Channel = {
  /** Payload: "<head> <instance id>" (see routingPayload). Sent by every commit that took a version. */
  Routing: "appproxy_routing",
  /** Payload: "<worker id> <instance id> <stream number>" (see notifyStreamTaken). */
  Streams: "appproxy_streams",
  /** Payload: a removed worker's id. */
  WorkerRemoved: "appproxy_worker_removed",
  /** Payload: the id of a worker registered again with another address: its routes' URLs moved. */
  WorkerReaddressed: "appproxy_worker_readdressed",
} as const;

/** Every channel an instance listens on. */
export const CHANNELS: readonly string[] = Object.values(Channel);

/** A notice as read back from its channel and payload. */
export type Notice =
  | { kind: "routing"; head: number | undefined; origin: string | undefined }
  | { kind: "stream_taken"; workerId: string; instanceId: string; streamSeq: number }
  | { kind: "worker_removed"; workerId: string }
  | { kind: "worker_readdressed"; workerId: string };

/** The new head and the instance that committed it, as the Routing channel carries them. */
export const routingPayload = (head: number, origin: string): string => `${head} ${origin}`.trim();

/** A Routing payload read back; a bare head (an older instance's) has no origin. */
export function parseRoutingPayload(payload: string): { head?: number; origin?: string } {
  const [version = "", origin] = payload.split(" ");
  const head = /^\d+$/.test(version) ? Number(version) : NaN;
  return { head: Number.isSafeInteger(head) ? head : undefined, origin: origin || undefined };
}

/** A notice read from its channel, or undefined for a payload that says nothing usable. */
export function parseNotice(channel: string, payload: string): Notice | undefined {
  switch (channel) {
    case Channel.Routing: {
      const { head, origin } = parseRoutingPayload(payload);
      return { kind: "routing", head, origin };
    }
    case Channel.Streams: {
      const [workerId, instanceId, seq = ""] = payload.split(" ");
      if (!workerId || !instanceId || !/^\d{1,15}$/.test(seq)) return undefined;
      return { kind: "stream_taken", workerId, instanceId, streamSeq: Number(seq) };
    }
    case Channel.WorkerRemoved:
      return payload ? { kind: "worker_removed", workerId: payload } : undefined;
    case Channel.WorkerReaddressed:
      return payload ? { kind: "worker_readdressed", workerId: payload } : undefined;
    default:
      return undefined;
  }
}

type Db = Knex | Knex.Transaction;

const notify = async (db: Db, channel: string, payload: string): Promise<void> => {
  await db.raw("SELECT pg_notify(?, ?)", [channel, payload]);
};

/** Every instance closes the worker's stream (delivered at commit when sent in a transaction). */
export const notifyWorkerRemoved = (db: Db, workerId: string) =>
  notify(db, Channel.WorkerRemoved, workerId);

/** The instance holding the worker's stream sends it a snapshot with its routes' new URLs. */
export const notifyWorkerReaddressed = (db: Db, workerId: string) =>
  notify(db, Channel.WorkerReaddressed, workerId);

/**
 * `instanceId` took the worker's stream numbered `streamSeq`: another instance holding an older
 * one lets it go.
 */
export const notifyStreamTaken = (
  db: Db,
  workerId: string,
  instanceId: string,
  streamSeq: number,
) => notify(db, Channel.Streams, `${workerId} ${instanceId} ${streamSeq}`);
