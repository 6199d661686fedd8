import Joi from "joi";

export const STREAM_PROTOCOL = 1;

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
  routes: Record<string, string>;
}

export type InboundFrame = AckFrame | NackFrame | ResyncFrame | ActivityFrame;

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
  const schema = known[type as InboundFrame["type"]];
  if (!schema || !Object.hasOwn(known, type)) return { kind: "ignored", type };
  const { error } = schema.validate(value, { abortEarly: true, convert: false });
  if (error) return { kind: "invalid", reason: `${type} frame: ${error.message}` };
  return { kind: "frame", frame: value as InboundFrame };
}

export interface HelloFrame {
  type: "hello";
  protocol: number;
  instance_id: string;
  heartbeat_interval_s: number;
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
export interface ErrorFrame {
  type: "error";
  code: string;
  message: string;
}

export type OutboundFrame = HelloFrame | SnapshotFrame | DiffFrame | ErrorFrame;
