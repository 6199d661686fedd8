/**
 * What the worker's two threads say to each other. The control thread (control-thread.ts) holds
 * the coordinator's stream through the client library and keeps DATA_DIR; the data plane's thread
 * (control-link.ts) serves traffic. A table change crosses in slices, one slice per turn of the
 * data plane's event loop, so that taking in a large one never holds up requests.
 */
import type { MessagePort } from "node:worker_threads";
import type { AccessKeySet } from "../client/access-keys.js";
import type { WorkerRegistration } from "../client/registration.js";
import type { Route } from "../client/route.js";
import type { StopCause } from "../client/worker-client.js";

/** Upserted routes handed over per slice. */
export const ROUTES_PER_SLICE = 250;

export interface ControlThreadData {
  coordinatorUrl: string;
  registrationToken: string;
  registration: WorkerRegistration;
  client: { reconnectMinMs?: number; reconnectMaxMs?: number; activityIntervalMs?: number };
  dataDir: string;
  owner: { name: string; coordinatorUrl: string };
  /**
   * One Int32 the data plane bumps (and notifies) each time it has taken in a slice: the control
   * thread waits on it before handing over the next one.
   */
  taken: SharedArrayBuffer;
  /** The data plane's answer to each change: read synchronously by the waiting control thread. */
  answers: MessagePort;
}

/** Control thread → data plane. */
export type ControlEvent =
  | { type: "upserts"; routes: Route[] }
  | { type: "commit"; version: number; deletes: string[] }
  /** Sent once at start, after the table kept in DATA_DIR (if any) was handed over. */
  | { type: "kept"; state: { workerId: string; version: number; accessKeys?: AccessKeySet } | null }
  | { type: "registered"; workerId: string; version: number; routes: number }
  | { type: "connected"; workerId: string; instanceId: string }
  | { type: "disconnected"; code: number; reason: string }
  | { type: "accessKeys"; keys: AccessKeySet }
  | { type: "warning"; message: string }
  | { type: "stopped"; cause: StopCause; error?: string }
  /** The stream is closed and the state kept: the thread ends. */
  | { type: "closed" };

/** Data plane → control thread. */
export type ControlCommand = { type: "activity"; routeId: string; at: number } | { type: "stop" };

/** The data plane's answer to a committed change: a nack's text, or none when all is served. */
export interface ChangeAnswer {
  refusal: string | undefined;
}
