import Joi from "joi";
import { PROTOCOLS, ROUTE_MODES } from "../workers/model.js";

// Joi descriptions of what the API answers, used only to generate the OpenAPI document, so that
// answers are described in the same language as the requests they validate.

const time = Joi.string().isoDate();
const labels = Joi.object().pattern(Joi.string(), Joi.string());

export const routeSchema = Joi.object({
  id: Joi.string().guid().required(),
  session_id: Joi.string().required(),
  kernel_id: Joi.string().allow(null).required(),
  endpoint_id: Joi.string().allow(null).required(),
  app: Joi.string().required(),
  protocol: Joi.string()
    .valid(...PROTOCOLS)
    .required(),
  mode: Joi.string()
    .valid(...ROUTE_MODES)
    .required(),
  upstreams: Joi.array()
    .items(
      Joi.object({
        host: Joi.string(),
        port: Joi.number().integer(),
        weight: Joi.number().integer(),
      }),
    )
    .required(),
  health_check: Joi.object({
    path: Joi.string(),
    interval_s: Joi.number().integer(),
    max_wait_s: Joi.number().integer(),
  })
    .allow(null)
    .required(),
  worker_selector: labels.required(),
  worker_id: Joi.string().guid().required(),
  port: Joi.number().integer().allow(null).required(),
  subdomain: Joi.string().allow(null).required(),
  url: Joi.string().required(),
  open_to_public: Joi.boolean().required(),
  allowed_client_ips: Joi.array().items(Joi.string()).required(),
  user_id: Joi.string().allow(null).required(),
  project_id: Joi.string().allow(null).required(),
  labels: labels.required(),
  expires_at: time.allow(null).required(),
  last_activity_at: time.allow(null).required(),
  version: Joi.number().integer().required(),
  created_at: time.required(),
  updated_at: time.required(),
});

export const workerSchema = Joi.object({
  id: Joi.string().guid().required(),
  name: Joi.string().required(),
  advertised_host: Joi.string().required(),
  frontend_mode: Joi.string().valid("port", "wildcard").required(),
  port_range: Joi.array().items(Joi.number().integer()).length(2).allow(null).required(),
  wildcard_domain: Joi.string().allow(null).required(),
  wildcard_traffic_port: Joi.number().integer().allow(null).required(),
  protocols: Joi.array()
    .items(Joi.string().valid(...PROTOCOLS))
    .required(),
  modes: Joi.array()
    .items(Joi.string().valid(...ROUTE_MODES))
    .required(),
  tls: Joi.boolean().required(),
  capacity: Joi.number().integer().allow(null).required(),
  labels: labels.required(),
  dedicated: Joi.boolean().required(),
  status: Joi.string().valid("registered", "alive", "lost", "draining").required(),
  connected: Joi.boolean().required(),
  route_count: Joi.number().integer().required(),
  applied_version: Joi.number().integer().required(),
  last_nack: Joi.object({ version: Joi.number().integer(), error: Joi.string(), at: time })
    .allow(null)
    .required(),
  last_seen_at: time.allow(null).required(),
  registered_at: time.required(),
});

export const problemSchema = Joi.object({
  type: Joi.string().required(),
  title: Joi.string().required(),
  status: Joi.number().integer().required(),
  detail: Joi.string().required(),
  errors: Joi.array().items(Joi.object({ path: Joi.string(), message: Joi.string() })),
}).unknown(true);

/** A JWK Set of the coordinator's public access-token keys (Ed25519). */
export const jwksSchema = Joi.object({
  keys: Joi.array()
    .items(
      Joi.object({
        kty: Joi.string().valid("OKP").required(),
        crv: Joi.string().valid("Ed25519").required(),
        x: Joi.string().required(),
        kid: Joi.string().required(),
        alg: Joi.string().valid("EdDSA").required(),
        use: Joi.string().valid("sig").required(),
      }),
    )
    .required(),
});

export const accessTokenSchema = Joi.object({
  token: Joi.string().required(),
  expires_at: time.required(),
  setup_url: Joi.string().uri().required(),
});

export const registeredSchema = Joi.object({
  worker: workerSchema.required(),
  token: Joi.string().required(),
  stream_url: Joi.string().required(),
  heartbeat_interval_s: Joi.number().integer().required(),
  version: Joi.number().integer().required(),
  routes: Joi.array().items(routeSchema).required(),
  access_keys: jwksSchema.required(),
});

export const routePageSchema = Joi.object({
  items: Joi.array().items(routeSchema).required(),
  next_cursor: Joi.string().allow(null).required(),
});

export const batchAnswerSchema = Joi.object({
  version: Joi.number().integer().required(),
  items: Joi.array().items(routeSchema).required(),
});

export const sessionDeletedSchema = Joi.object({
  deleted: Joi.number().integer().required(),
  version: Joi.number().integer().required(),
});

export const statusSchema = Joi.object({
  coordinator: Joi.object({
    instance_id: Joi.string(),
    version: Joi.string(),
    started_at: time,
    uptime_s: Joi.number().integer(),
    database: Joi.string().valid("postgres", "embedded"),
  }),
  routing: Joi.object({
    version: Joi.number().integer(),
    routes: Joi.number().integer(),
    changelog_min_version: Joi.number().integer(),
    stranded_routes: Joi.number().integer(),
  }),
  workers: Joi.object({
    total: Joi.number().integer(),
    registered: Joi.number().integer(),
    alive: Joi.number().integer(),
    lost: Joi.number().integer(),
    draining: Joi.number().integer(),
    connected: Joi.number().integer(),
    converged: Joi.number().integer(),
  }),
  workers_detail: Joi.array().items(
    Joi.object({
      id: Joi.string(),
      name: Joi.string(),
      status: Joi.string(),
      connected: Joi.boolean(),
      applied_version: Joi.number().integer(),
      lag: Joi.number().integer(),
      route_count: Joi.number().integer(),
      last_seen_at: time.allow(null),
      instance_id: Joi.string().allow(null),
      last_nack: Joi.object({ version: Joi.number().integer(), error: Joi.string(), at: time })
        .allow(null)
        .required(),
    }),
  ),
});

/** `GET /`: what this service is and where to read on. */
export const serviceIndexSchema = Joi.object({
  name: Joi.string().required(),
  version: Joi.string().required(),
  description: Joi.string().required(),
  links: Joi.object().pattern(Joi.string(), Joi.string()).required(),
  docs: Joi.object().pattern(Joi.string(), Joi.string()).required(),
});
