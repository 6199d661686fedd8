export type FrontendMode = "port" | "wildcard";
export type WorkerStatus = "registered" | "alive" | "lost" | "draining";
export type Protocol = "http" | "tcp" | "grpc" | "h2";
export type RouteMode = "interactive" | "inference";

export const PROTOCOLS: readonly Protocol[] = ["http", "tcp", "grpc", "h2"];
export const ROUTE_MODES: readonly RouteMode[] = ["interactive", "inference"];
export const ELIGIBLE_STATUSES: readonly WorkerStatus[] = ["registered", "alive"];

/** A row of `workers`. */
export interface WorkerRow {
  id: string;
  name: string;
  advertised_host: string;
  frontend_mode: FrontendMode;
  port_lo: number | null;
  port_hi: number | null;
  wildcard_domain: string | null;
  wildcard_traffic_port: number | null;
  protocols: Protocol[];
  modes: RouteMode[];
  tls: boolean;
  capacity: number | null;
  labels: Record<string, string>;
  dedicated: boolean;
  status: WorkerStatus;
  route_count: number;
  applied_version: number;
  last_nack: { version: number; error: string; at: string } | null;
  connected_instance: string | null;
  /** The number of the newest stream whose start or end was recorded (0: none yet). */
  stream_seq: number | string;
  last_seen_at: Date | null;
  liveness_since: Date;
  lost_at: Date | null;
  registered_at: Date;
  updated_at: Date;
}

/** The worker as the API shows it. */
export interface WorkerView {
  id: string;
  name: string;
  advertised_host: string;
  frontend_mode: FrontendMode;
  port_range: [number, number] | null;
  wildcard_domain: string | null;
  wildcard_traffic_port: number | null;
  protocols: Protocol[];
  modes: RouteMode[];
  tls: boolean;
  capacity: number | null;
  labels: Record<string, string>;
  dedicated: boolean;
  status: WorkerStatus;
  connected: boolean;
  route_count: number;
  applied_version: number;
  last_nack: WorkerRow["last_nack"];
  last_seen_at: string | null;
  registered_at: string;
}

/** The port users reach a wildcard worker's routes on. */
export function trafficPort(w: Pick<WorkerRow, "wildcard_traffic_port" | "tls">): number {
  return w.wildcard_traffic_port ?? (w.tls ? 443 : 80);
}

export function presentWorker(w: WorkerRow): WorkerView {
  return {
    id: w.id,
    name: w.name,
    advertised_host: w.advertised_host,
    frontend_mode: w.frontend_mode,
    port_range: w.port_lo !== null && w.port_hi !== null ? [w.port_lo, w.port_hi] : null,
    wildcard_domain: w.wildcard_domain,
    wildcard_traffic_port: w.frontend_mode === "wildcard" ? trafficPort(w) : null,
    protocols: w.protocols,
    modes: w.modes,
    tls: w.tls,
    capacity: w.capacity,
    labels: w.labels,
    dedicated: w.dedicated,
    status: w.status,
    connected: w.connected_instance !== null,
    route_count: w.route_count,
    applied_version: Number(w.applied_version),
    last_nack: w.last_nack,
    last_seen_at: w.last_seen_at ? new Date(w.last_seen_at).toISOString() : null,
    registered_at: new Date(w.registered_at).toISOString(),
  };
}
