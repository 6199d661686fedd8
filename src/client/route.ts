import {
  ShapeError,
  expectArray,
  expectBoolean,
  expectInteger,
  expectNonEmptyString,
  expectNullable,
  expectObject,
  expectOneOf,
  expectPositiveNumber,
  expectString,
  expectStringMap,
  hasField,
  joinPath,
  type JsonObject,
} from "./shape.js";

export const ROUTE_PROTOCOLS = ["http", "tcp", "grpc", "h2"] as const;
export type RouteProtocol = (typeof ROUTE_PROTOCOLS)[number];

export const ROUTE_MODES = ["interactive", "inference"] as const;
export type RouteMode = (typeof ROUTE_MODES)[number];

export interface Upstream {
  host: string;
  port: number;
  weight: number;
}

export interface HealthCheck {
  path: string;
  interval_s: number;
  max_wait_s: number;
}

/**
 * A route as the coordinator sends it to the worker that serves it. The fields a proxy needs to
 * serve traffic are required; the bookkeeping fields are optional here so that a worker keeps
 * working if the coordinator leaves one out, but each is type-checked when present.
 */
export interface Route {
  id: string;
  version: number;
  protocol: RouteProtocol;
  mode: RouteMode;
  upstreams: Upstream[];
  port: number | null;
  subdomain: string | null;
  url: string;
  session_id?: string | null;
  kernel_id?: string | null;
  endpoint_id?: string | null;
  app?: string | null;
  health_check?: HealthCheck | null;
  worker_selector?: Record<string, string>;
  worker_id?: string | null;
  open_to_public?: boolean;
  allowed_client_ips?: string[];
  user_id?: string | null;
  project_id?: string | null;
  labels?: Record<string, string>;
  expires_at?: string | null;
  last_activity_at?: string | null;
  created_at?: string;
  updated_at?: string;
}

function parseUpstream(value: unknown, path: string): Upstream {
  const object = expectObject(value, path);
  return {
    host: expectNonEmptyString(object.host, joinPath(path, "host")),
    port: expectPort(object.port, joinPath(path, "port")),
    weight: expectInteger(object.weight, joinPath(path, "weight")),
  };
}

function parseHealthCheck(value: unknown, path: string): HealthCheck {
  const object = expectObject(value, path);
  return {
    path: expectString(object.path, joinPath(path, "path")),
    interval_s: expectPositiveNumber(object.interval_s, joinPath(path, "interval_s")),
    max_wait_s: expectPositiveNumber(object.max_wait_s, joinPath(path, "max_wait_s")),
  };
}

function expectPort(value: unknown, path: string): number {
  const port = expectInteger(value, path, 1);
  if (port > 65535) throw new ShapeError(path, "a port number (1-65535)");
  return port;
}

function nullableString(object: JsonObject, key: string, path: string): string | null {
  return expectNullable(object[key], joinPath(path, key), expectString);
}

/** Narrows one route of a snapshot or a diff; unknown fields are dropped, known ones checked. */
export function parseRoute(value: unknown, path: string): Route {
  const object = expectObject(value, path);
  const at = (key: string): string => joinPath(path, key);
  const upstreams = expectArray(object.upstreams, at("upstreams"), parseUpstream);
  if (upstreams.length === 0) throw new ShapeError(at("upstreams"), "at least one upstream");

  const route: Route = {
    id: expectNonEmptyString(object.id, at("id")),
    version: expectInteger(object.version, at("version")),
    protocol: expectOneOf(object.protocol, at("protocol"), ROUTE_PROTOCOLS),
    mode: expectOneOf(object.mode, at("mode"), ROUTE_MODES),
    upstreams,
    port: expectNullable(object.port, at("port"), expectPort),
    subdomain: nullableString(object, "subdomain", path),
    url: expectString(object.url, at("url")),
  };

  for (const key of [
    "session_id",
    "kernel_id",
    "endpoint_id",
    "app",
    "worker_id",
    "user_id",
    "project_id",
    "expires_at",
    "last_activity_at",
  ] as const) {
    if (hasField(object, key)) route[key] = nullableString(object, key, path);
  }
  if (hasField(object, "created_at"))
    route.created_at = expectString(object.created_at, at("created_at"));
  if (hasField(object, "updated_at"))
    route.updated_at = expectString(object.updated_at, at("updated_at"));
  if (hasField(object, "health_check")) {
    route.health_check = expectNullable(object.health_check, at("health_check"), parseHealthCheck);
  }
  if (hasField(object, "worker_selector")) {
    route.worker_selector = expectStringMap(object.worker_selector, at("worker_selector"));
  }
  if (hasField(object, "labels")) route.labels = expectStringMap(object.labels, at("labels"));
  if (hasField(object, "open_to_public")) {
    route.open_to_public = expectBoolean(object.open_to_public, at("open_to_public"));
  }
  if (hasField(object, "allowed_client_ips")) {
    route.allowed_client_ips = expectArray(
      object.allowed_client_ips,
      at("allowed_client_ips"),
      expectString,
    );
  }
  return route;
}
