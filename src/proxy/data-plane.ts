import type http from "node:http";
import type { Logger } from "../logger.js";
import type { RouteTokenVerifier } from "./access.js";
import type { ActivityMeter } from "./activity-meter.js";
import type { WorkerMetrics } from "./metrics.js";
import type { RouteIndex, ServedRoute } from "./route-index.js";
import type { TunnelRegistry } from "./tunnel-registry.js";

/** What every forwarder of the worker shares: the current index and the worker's services. */
export interface DataPlane {
  /** The index in force now; read it once per request or connection. */
  index(): RouteIndex;
  /** The HTTP route a request is for, by the port it came in on or by its Host. */
  lookup(req: http.IncomingMessage): ServedRoute | undefined;
  /** Whether the worker's listeners speak TLS (https/wss). */
  readonly tls: boolean;
  /** TRUSTED_PROXIES compiled: is the address at `hop` a proxy whose X-Forwarded-For we believe? */
  readonly trusted: (address: string, hop: number) => boolean;
  readonly verifier: RouteTokenVerifier;
  readonly metrics: WorkerMetrics;
  readonly activity: ActivityMeter;
  readonly tunnels: TunnelRegistry;
  /** Keep-alive connections to upstreams, shared by every route. */
  readonly agent: http.Agent;
  readonly logger: Logger;
}

/** Upstream connections that take longer than this are given up on (and the upstream skipped). */
export const UPSTREAM_CONNECT_TIMEOUT_MS = 10_000;

/** System errors meaning the upstream did not take the connection at all. */
export function isRefusal(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return (
    code === "ECONNREFUSED" ||
    code === "EHOSTUNREACH" ||
    code === "ENETUNREACH" ||
    code === "ENOTFOUND" ||
    code === "EAI_AGAIN" ||
    code === "ETIMEDOUT"
  );
}
