/** WebSocket close codes of the worker stream, as docs/api.md ("The stream") names them. */
export const StreamCloseCode = {
  /** The worker stops on purpose. */
  Normal: 1000,
  /** The coordinator shuts down. */
  GoingAway: 1001,
  /** No close frame: the connection broke. */
  Abnormal: 1006,
  /** Another stream of the same worker took over; this one must not come back. */
  Replaced: 4000,
  /** The worker fell more than 8 MiB behind; it resyncs when it comes back. */
  Backlog: 4008,
  /** A frame was not valid JSON of a known shape. */
  BadFrame: 4400,
  /** The worker was removed by an operator; it registers again to come back as a new worker. */
  WorkerRemoved: 4404,
} as const;
