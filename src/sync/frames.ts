import Joi from "joi";

import type { ErrorFrame, HelloFrame, WorkerFrame } from "../client/frames.js";

// The frames' shapes are defined once, with the client library that speaks the other end.
export { STREAM_PROTOCOL } from "../client/frames.js";
export type { AckFrame, ActivityFrame, NackFrame, ResyncFrame } from "../client/frames.js";
export type InboundFrame = WorkerFrame;

const version = Joi.number().integer().min(0).required();
const known: Record<InboundFrame["type"], Joi.ObjectSchema> = {
  ack: Joi.object({
    type: Joi.string().required(),
    version,
    digest: Joi.string()
      .pattern(/^[0-9a-f]{64}$/)
      .required(),
  }).unknown(true),
  nack: Joi.object({
    type: Joi.string().required(),
    version,
    error: Joi.string().max(4096).allow("").required(),
  }).unknown(true),
  resync: Joi.object({ type: Joi.string().required() }).unknown(true),
  activity: Joi.object({
    type: Joi.string().required(),
    routes: Joi.object().pattern(Joi.string().guid(), Joi.string().isoDate()).max(10000).required(),
  }).unknown(true),
};

const DIGEST = /^[0-9a-f]{64}$/;

/**
 * An ack exactly as the ack schema accepts it, checked without Joi: acks are most of what a
 * fleet sends (one per diff, empty ones included). Anything else goes through the schema, which
 * also words the error.
 */
function isPlainAck(value: Record<string, unknown>): boolean {
  const { version, digest } = value;
  return (
    typeof version === "number" &&
    Number.isSafeInteger(version) &&
    version >= 0 &&
    typeof digest === "string" &&
    DIGEST.test(digest)
  );
}

export type ParsedFrame =
  | { kind: "frame"; frame: InboundFrame }
  | { kind: "ignored"; type: string }
  | { kind: "invalid"; reason: string };

/** Validates one inbound text frame; unknown frame types and unknown fields are ignored. */
export function parseInbound(text: string): ParsedFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "invalid", reason: "frame is not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { kind: "invalid", reason: "frame is not a JSON object" };
  }
  const type = (value as { type?: unknown }).type;
  if (typeof type !== "string") return { kind: "invalid", reason: "frame has no type" };
  if (type === "ack" && isPlainAck(value as Record<string, unknown>)) {
    return { kind: "frame", frame: value as InboundFrame };
  }
  const schema = known[type as InboundFrame["type"]];
  if (!schema || !Object.hasOwn(known, type)) return { kind: "ignored", type };
  const { error } = schema.validate(value, { abortEarly: true, convert: false });
  if (error) return { kind: "invalid", reason: `${type} frame: ${error.message}` };
  return { kind: "frame", frame: value as InboundFrame };
}

export interface SnapshotFrame {
  type: "snapshot";
  version: number;
  routes: object[];
  digest: string;
}
export interface DiffFrame {
  type: "diff";
  from: number;
  to: number;
  upserts: object[];
  deletes: string[];
  digest: string;
}
/** Snapshots and diffs as the hub builds them (routes as the API shows them). */
export type OutboundFrame = HelloFrame | SnapshotFrame | DiffFrame | ErrorFrame;
