import Joi from "joi";
import {
  dnsLabel,
  labelMap,
  labelFilter,
  optionalText,
  plainText,
  propagationQuery,
  storableTime,
  tcpPort,
  uuid,
} from "../shared/schema-parts.js";
import { PROTOCOLS, ROUTE_MODES, type Protocol, type RouteMode } from "../workers/model.js";
import type { HealthCheck, Upstream } from "./model.js";

const upstream = Joi.object({
  host: Joi.alternatives()
    .try(Joi.string().ip({ cidr: "forbidden" }), Joi.string().hostname())
    .required()
    .messages({ "alternatives.match": "must be an IP address or a host name" }),
  port: tcpPort.required(),
  weight: Joi.number().integer().strict().min(0).max(1000).default(1),
});

const healthCheck = Joi.object({
  // Goes into the request line of the worker's probe: printable ASCII only, no space.
  path: Joi.string()
    .pattern(/^\/[\x21-\x7e]*$/)
    .max(1024)
    .required()
    .messages({
      "string.pattern.base":
        "must be an absolute path of printable ASCII without spaces (percent-encode the rest)",
    }),
  interval_s: Joi.number().integer().strict().min(1).max(3600).required(),
  max_wait_s: Joi.number().integer().strict().min(1).max(3600).required(),
}).allow(null);

const clientIps = Joi.array()
  .items(Joi.string().ip({ cidr: "optional" }))
  .max(256);

const mutable = {
  upstreams: Joi.array().items(upstream).min(1).max(64),
  health_check: healthCheck,
  open_to_public: Joi.boolean().strict(),
  allowed_client_ips: clientIps,
  labels: labelMap,
  expires_at: storableTime.allow(null),
};

export const routeCreateSchema = Joi.object({
  id: uuid,
  session_id: plainText(255).min(1).required(),
  kernel_id: optionalText(),
  endpoint_id: optionalText(),
  app: plainText(63).min(1).required(),
  protocol: Joi.string()
    .valid(...PROTOCOLS)
    .default("http"),
  mode: Joi.string()
    .valid(...ROUTE_MODES)
    .default("interactive"),
  upstreams: mutable.upstreams.required(),
  health_check: mutable.health_check.default(null),
  worker_selector: labelMap.default({}),
  worker_id: uuid,
  port: tcpPort,
  subdomain: dnsLabel,
  open_to_public: mutable.open_to_public.default(false),
  allowed_client_ips: mutable.allowed_client_ips.default([]),
  user_id: optionalText(),
  project_id: optionalText(),
  labels: labelMap.default({}),
  expires_at: mutable.expires_at.default(null),
}).oxor("port", "subdomain");

/** A validated create request. */
export interface RouteInput {
  id?: string;
  session_id: string;
  kernel_id?: string | null;
  endpoint_id?: string | null;
  app: string;
  protocol: Protocol;
  mode: RouteMode;
  upstreams: Upstream[];
  health_check: HealthCheck | null;
  worker_selector: Record<string, string>;
  worker_id?: string;
  port?: number;
  subdomain?: string;
  open_to_public: boolean;
  allowed_client_ips: string[];
  user_id?: string | null;
  project_id?: string | null;
  labels: Record<string, string>;
  expires_at: Date | null;
}

export const MAX_BATCH = 1000;

export const routeBatchSchema = Joi.object({
  routes: Joi.array().items(routeCreateSchema).min(1).max(MAX_BATCH).required(),
});

export const routePatchSchema = Joi.object(mutable).min(1);

export type RoutePatch = Partial<{
  upstreams: Upstream[];
  health_check: HealthCheck | null;
  open_to_public: boolean;
  allowed_client_ips: string[];
  labels: Record<string, string>;
  expires_at: Date | null;
}>;

export const mutationQuerySchema = Joi.object(propagationQuery);

/** Reads of one route take no query parameters; unknown ones are refused like unknown fields. */
export const readQuerySchema = Joi.object({});

export const deleteBySessionQuerySchema = Joi.object({
  session_id: plainText(255).min(1).required(),
  ...propagationQuery,
}).messages({ "any.required": "is required: give session_id" });

export const listRoutesQuerySchema = Joi.object({
  // The same rules as the fields they match: whatever can be stored can be found.
  session_id: plainText(255),
  endpoint_id: plainText(255),
  worker_id: uuid,
  app: plainText(63),
  mode: Joi.string().valid(...ROUTE_MODES),
  user_id: plainText(255),
  project_id: plainText(255),
  label: Joi.alternatives().try(labelFilter, Joi.array().items(labelFilter).max(16)),
  inactive_since: storableTime,
  limit: Joi.number().integer().min(1).max(1000).default(100),
  cursor: Joi.string().max(200),
});

export interface ListRoutesQuery {
  session_id?: string;
  endpoint_id?: string;
  worker_id?: string;
  app?: string;
  mode?: RouteMode;
  user_id?: string;
  project_id?: string;
  label?: string | string[];
  inactive_since?: Date;
  limit: number;
  cursor?: string;
}
