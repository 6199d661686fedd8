import Joi from "joi";
import { dnsLabel, labelMap, propagationQuery, tcpPort } from "../shared/schema-parts.js";
import {
  PROTOCOLS,
  ROUTE_MODES,
  type FrontendMode,
  type Protocol,
  type RouteMode,
} from "./model.js";

export const registerSchema = Joi.object({
  name: dnsLabel.required(),
  advertised_host: Joi.alternatives()
    .try(Joi.string().ip({ cidr: "forbidden" }), Joi.string().hostname())
    .required()
    .messages({ "alternatives.match": "must be an IP address or a host name" }),
  frontend_mode: Joi.string().valid("port", "wildcard").required(),
  port_range: Joi.when("frontend_mode", {
    is: "port",
    // Two items exactly: `ordered` refuses a third, `required` a missing one.
    then: Joi.array().ordered(tcpPort.required(), tcpPort.required()).required().messages({
      "array.orderedLength": "must be two ports, [first, last]",
      "array.includesRequiredUnknowns": "must be two ports, [first, last]",
    }),
    otherwise: Joi.valid(null).default(null),
  }).custom((value: unknown, helpers) => {
    const [first, last] = Array.isArray(value) ? (value as unknown[]) : [];
    if (typeof first === "number" && typeof last === "number" && first > last) {
      return helpers.message({ custom: "first port must not be greater than the last" });
    }
    return value;
  }),
  wildcard_domain: Joi.when("frontend_mode", {
    is: "wildcard",
    then: Joi.string().hostname().lowercase().max(200).required(),
    otherwise: Joi.valid(null).default(null),
  }),
  protocols: Joi.array()
    .items(Joi.string().valid(...PROTOCOLS))
    .min(1)
    .unique()
    .default(["http"]),
  modes: Joi.array()
    .items(Joi.string().valid(...ROUTE_MODES))
    .min(1)
    .unique()
    .default(["interactive", "inference"]),
  tls: Joi.boolean().strict().default(false),
  capacity: Joi.number().integer().strict().min(1).allow(null).default(null),
  labels: labelMap.default({}),
  dedicated: Joi.boolean().strict().default(false),
  wildcard_traffic_port: tcpPort.allow(null).default(null),
});

/** A validated registration. */
export interface Registration {
  name: string;
  advertised_host: string;
  frontend_mode: FrontendMode;
  port_range: [number, number] | null;
  wildcard_domain: string | null;
  protocols: Protocol[];
  modes: RouteMode[];
  tls: boolean;
  capacity: number | null;
  labels: Record<string, string>;
  dedicated: boolean;
  wildcard_traffic_port: number | null;
}

export const listWorkersQuerySchema = Joi.object({
  status: Joi.string().valid("registered", "alive", "lost", "draining"),
});

export const drainQuerySchema = Joi.object({
  migrate: Joi.boolean(),
  ...propagationQuery,
});

export const deleteWorkerQuerySchema = Joi.object({
  force: Joi.boolean(),
  ...propagationQuery,
});

export const mutationQuerySchema = Joi.object(propagationQuery);

/** Reads of one worker take no query parameters; unknown ones are refused like unknown fields. */
export const readQuerySchema = Joi.object({});
