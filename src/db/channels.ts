/** NOTIFY channels between coordinator instances sharing one database. */
export const Channel = {
  /** Payload: the new head version. Sent by every commit that took a version. */
  Routing: "appproxy_routing",
  /** Payload: "<worker id> <instance id> <epoch ms>": that instance took the worker's stream then. */
  Streams: "appproxy_streams",
  /** Payload: a removed worker's id. */
  WorkerRemoved: "appproxy_worker_removed",
} as const;
