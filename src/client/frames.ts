import { parseAccessKeySet, type AccessKeySet } from "./access-keys.js";
import { parseRoute, type Route } from "./route.js";
import {
  ShapeError,
  expectArray,
  expectInteger,
  expectNonEmptyString,
  expectPositiveNumber,
  expectString,
  hasField,
  isJsonObject,
  type JsonObject,
} from "./shape.js";

/** The stream protocol revision this client speaks (the `protocol` field of `hello`). */
export const STREAM_PROTOCOL = 1;

// Coordinator to worker.

export interface HelloFrame {
  type: "hello";
  protocol: number;
  instance_id: string;
  heartbeat_interval_s: number;
  /** The public keys that verify access tokens; absent from coordinators before they had any. */
  access_keys?: AccessKeySet;
}

export interface SnapshotFrame {
  type: "snapshot";
  version: number;
  routes: Route[];
  digest: string;
}

export interface DiffFrame {
  type: "diff";
  from: number;
  to: number;
  upserts: Route[];
  deletes: string[];
  digest: string;
}

export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
}

export type CoordinatorFrame = HelloFrame | SnapshotFrame | DiffFrame | ErrorFrame;

// Worker to coordinator.

export interface AckFrame {
  type: "ack";
  version: number;
  digest: string;
}

export interface NackFrame {
  type: "nack";
  version: number;
  error: string;
}

export interface ResyncFrame {
  type: "resync";
}

export interface ActivityFrame {
  type: "activity";
  /** Route id to the ISO 8601 time of its last traffic. */
  routes: Record<string, string>;
}

export type WorkerFrame = AckFrame | NackFrame | ResyncFrame | ActivityFrame;

/**
 * The outcome of reading one inbound text frame:
 * - `frame`: a known frame type of the right shape;
 * - `ignored`: valid JSON with a `type` this client does not know (the contract says to ignore it);
 * - `invalid`: not JSON, no `type`, or a known type of the wrong shape. `type` and `version` (the
 *   version a snapshot or diff would have brought the table to) are filled in when they could be
 *   read, so the caller can answer with a `nack` for that version.
 */
export type InboundFrameResult =
  | { kind: "frame"; frame: CoordinatorFrame }
  | { kind: "ignored"; type: string }
  | { kind: "invalid"; reason: string; type?: string; version?: number };

function parseHello(object: JsonObject): HelloFrame {
  const hello: HelloFrame = {
    type: "hello",
    protocol: expectInteger(object.protocol, "protocol"),
    instance_id: expectString(object.instance_id, "instance_id"),
    heartbeat_interval_s: expectPositiveNumber(object.heartbeat_interval_s, "heartbeat_interval_s"),
  };
  if (hasField(object, "access_keys")) {
    hello.access_keys = parseAccessKeySet(object.access_keys, "access_keys");
  }
  return hello;
}

function parseSnapshot(object: JsonObject): SnapshotFrame {
  return {
    type: "snapshot",
    version: expectInteger(object.version, "version"),
    routes: expectArray(object.routes, "routes", parseRoute),
    digest: expectString(object.digest, "digest"),
  };
}

function parseDiff(object: JsonObject): DiffFrame {
  const from = expectInteger(object.from, "from");
  const to = expectInteger(object.to, "to");
  if (to < from) throw new ShapeError("to", `an integer >= from (${from})`);
  return {
    type: "diff",
    from,
    to,
    upserts: expectArray(object.upserts, "upserts", parseRoute),
    deletes: expectArray(object.deletes, "deletes", expectNonEmptyString),
    digest: expectString(object.digest, "digest"),
  };
}

function parseError(object: JsonObject): ErrorFrame {
  return {
    type: "error",
    code: expectString(object.code, "code"),
    message: expectString(object.message, "message"),
  };
}

const inboundParsers: Readonly<
  Record<CoordinatorFrame["type"], (o: JsonObject) => CoordinatorFrame>
> = { hello: parseHello, snapshot: parseSnapshot, diff: parseDiff, error: parseError };

function isKnownInboundType(type: string): type is CoordinatorFrame["type"] {
  return Object.prototype.hasOwnProperty.call(inboundParsers, type);
}

/** The version a snapshot or diff was meant to bring the table to, if it can be read at all. */
function targetVersion(type: string, object: JsonObject): number | undefined {
  const candidate = type === "snapshot" ? object.version : type === "diff" ? object.to : undefined;
  return typeof candidate === "number" && Number.isSafeInteger(candidate) && candidate >= 0
    ? candidate
    : undefined;
}

/** Reads one text frame from the coordinator. Never throws. */
export function parseCoordinatorFrame(text: string): InboundFrameResult {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "invalid", reason: "frame is not valid JSON" };
  }
  if (!isJsonObject(value)) return { kind: "invalid", reason: "frame is not a JSON object" };
  const object = value;
  if (typeof object.type !== "string") return { kind: "invalid", reason: "frame has no type" };

  const type = object.type;
  if (!isKnownInboundType(type)) return { kind: "ignored", type };
  try {
    return { kind: "frame", frame: inboundParsers[type](object) };
  } catch (error) {
    if (!(error instanceof ShapeError)) throw error;
    const version = targetVersion(type, object);
    const reason = `${type} frame: ${error.message}`;
    return version === undefined
      ? { kind: "invalid", reason, type }
      : { kind: "invalid", reason, type, version };
  }
}

export function encodeWorkerFrame(frame: WorkerFrame): string {
  return JSON.stringify(frame);
}
