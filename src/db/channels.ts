/** NOTIFY channels between coordinator instances sharing one database. */
export const Channel = {
  /** Payload: "<head> <instance id>" (see routingPayload). Sent by every commit that took a version. */
  Routing: "appproxy_routing",
  /** Payload: "<worker id> <instance id> <epoch ms>": that instance took the worker's stream then. */
  Streams: "appproxy_streams",
  /** Payload: a removed worker's id. */
  WorkerRemoved: "appproxy_worker_removed",
  /** Payload: the id of a worker registered again with another address: its routes' URLs moved. */
  WorkerReaddressed: "appproxy_worker_readdressed",
} as const;

/** The new head and the instance that committed it, as the Routing channel carries them. */
export const routingPayload = (head: number, origin: string): string => `${head} ${origin}`.trim();

/** A Routing payload read back; a bare head (an older instance's) has no origin. */
export function parseRoutingPayload(payload: string): { head?: number; origin?: string } {
  const [version = "", origin] = payload.split(" ");
  const head = /^\d+$/.test(version) ? Number(version) : NaN;
  return { head: Number.isSafeInteger(head) ? head : undefined, origin: origin || undefined };
}
