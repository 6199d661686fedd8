/**
 * The proxy-worker client of appproxy-coordinator: register, keep the routing table in step over
 * the worker stream, report traffic, and check the access tokens users bring.
 */
export {
  WorkerClient,
  type ConnectedEvent,
  type DisconnectedEvent,
  type RegisteredEvent,
  type StopCause,
  type StoppedEvent,
  type SyncedEvent,
  type WorkerClientEvents,
  type WorkerClientOptions,
  type ResumeState,
} from "./worker-client.js";
export {
  RoutingTable,
  EMPTY_TABLE_DIGEST,
  type ApplyOutcome,
  type DiffChanges,
  type RoutingTableView,
  type TableChange,
  type TableMismatch,
} from "./routing-table.js";
export {
  AccessTokenVerifier,
  type AccessDenial,
  type AccessPermit,
  type AccessTokenCheck,
  type AccessTokenVerifierOptions,
} from "./access-token.js";
export { parseAccessKeySet, type AccessKeySet } from "./access-keys.js";
export { tableDigest, type DigestEntry } from "./digest.js";
export {
  STREAM_PROTOCOL,
  encodeWorkerFrame,
  parseCoordinatorFrame,
  type AckFrame,
  type ActivityFrame,
  type CoordinatorFrame,
  type DiffFrame,
  type ErrorFrame,
  type HelloFrame,
  type InboundFrameResult,
  type NackFrame,
  type ResyncFrame,
  type SnapshotFrame,
  type WorkerFrame,
} from "./frames.js";
export {
  ROUTE_MODES,
  ROUTE_PROTOCOLS,
  parseRoute,
  type HealthCheck,
  type Route,
  type RouteMode,
  type RouteProtocol,
  type Upstream,
} from "./route.js";
export {
  RegistrationError,
  registerWorker,
  type FrontendMode,
  type RegisteredWorker,
  type RegistrationAnswer,
  type WorkerRegistration,
} from "./registration.js";
export {
  CoordinatorStreamError,
  StreamFrameError,
  RoutesRefusedError,
  StreamRefusedError,
  TableMismatchError,
} from "./stream-errors.js";
export { StreamCloseCode } from "./close-codes.js";
export { fullJitterDelay } from "./backoff.js";
