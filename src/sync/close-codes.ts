/** WebSocket close codes of the stream (docs/api.md, "The stream"). */
export const CloseCode = {
  GoingAway: 1001,
  /** Another stream of the same worker replaced this one. */
  Replaced: 4000,
  /** A frame that is not valid JSON of the stream's shapes. */
  BadFrame: 4400,
  /** The worker was removed while its stream was open. */
  WorkerRemoved: 4404,
  /** The worker's unsent data passed the limit; it resyncs when it comes back. */
  TooSlow: 4008,
  /** The coordinator could not read the worker's table (the database is away); it reconnects. */
  InternalError: 1011,
} as const;

export type CloseCodeValue = (typeof CloseCode)[keyof typeof CloseCode];

/** Codes of `error` frames. */
export const FrameError = {
  BadFrame: "bad_frame",
  WorkerRemoved: "worker_removed",
  TooSlow: "too_slow",
  Internal: "internal",
} as const;

/** Unsent bytes after which a stream is closed with TooSlow. */
export const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Largest inbound frame accepted. */
export const MAX_INBOUND_FRAME_BYTES = 1024 * 1024;

/** Close codes counted by their number; a worker may close with any of thousands of others. */
const COUNTED_CODES = new Set<number>([
  ...Array.from({ length: 16 }, (_, i) => 1000 + i), // RFC 6455's registered codes, 1000-1015
  ...Object.values(CloseCode),
]);

/**
 * The label of a close code in `appproxy_stream_disconnects_total`: the code itself when the
 * protocol or this stream defines it, else "other", so that a worker cannot create metric series.
 */
export function closeCodeLabel(code: number): string {
  return COUNTED_CODES.has(code) ? String(code) : "other";
}
