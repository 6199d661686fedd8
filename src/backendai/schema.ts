import Joi from "joi";
import { tcpPort } from "../shared/schema-parts.js";

// The bodies and queries of Backend.AI's App Proxy API, as its Manager and web UI send them.
// Unlike the coordinator's own API, fields a newer Manager adds are ignored, not refused; old
// names (`endpoint_id`, `group_id`) are taken beside the new ones, the new one first.

const uuid = Joi.string().guid().lowercase();
const host = Joi.alternatives()
  .try(Joi.string().ip({ cidr: "forbidden" }), Joi.string().hostname())
  .messages({ "alternatives.match": "must be an IP address or a host name" });

/** Objects ignore keys they do not know, here and in every object inside them. */
const lenient = <T extends Joi.Schema>(schema: T): T =>
  schema.prefs({ allowUnknown: true, stripUnknown: true }) as T;

/** `ModelHealthCheck`, whose keys may also come in kebab-case. */
const healthCheck = Joi.object({
  enable: Joi.boolean(),
  interval: Joi.number().min(0).max(86_400).default(10),
  path: Joi.string().pattern(/^\//).max(1024).default("/health"),
  max_retries: Joi.number().integer().min(0),
  max_wait_time: Joi.number().min(0).max(86_400).default(15),
  expected_status_code: Joi.number().integer().min(101).max(599),
  initial_delay: Joi.number().min(0),
})
  .rename("max-retries", "max_retries", { ignoreUndefined: true })
  .rename("max-wait-time", "max_wait_time", { ignoreUndefined: true })
  .rename("expected-status-code", "expected_status_code", { ignoreUndefined: true })
  .rename("initial-delay", "initial_delay", { ignoreUndefined: true })
  .allow(null);

export interface HealthCheckInput {
  interval: number;
  path: string;
  max_wait_time: number;
}

const deploymentKeys = { deployment_id: uuid, endpoint_id: uuid };

const createFields = {
  ...deploymentKeys,
  version: Joi.string().max(16),
  service_name: Joi.string().min(1).max(255).required(),
  tags: Joi.object({
    session: Joi.object({
      user_uuid: Joi.string().max(255).required(),
      project_id: Joi.string().max(255),
      group_id: Joi.string().max(255),
      domain_name: Joi.string().max(255).required(),
    })
      .or("project_id", "group_id")
      .required(),
    endpoint: Joi.object({
      id: Joi.string().max(255).required(),
      runtime_variant: Joi.string().max(255).required(),
      existing_url: Joi.string().max(2048).allow(null).default(null),
    }).required(),
  }).required(),
  open_to_public: Joi.boolean().default(false),
  health_check: healthCheck.default(null),
};
const createItem = Joi.object(createFields).or("deployment_id", "endpoint_id");

export interface CreateItem {
  deployment_id?: string;
  endpoint_id?: string;
  service_name: string;
  tags: {
    session: { user_uuid: string; project_id?: string; group_id?: string; domain_name: string };
    endpoint: { id: string; runtime_variant: string; existing_url: string | null };
  };
  open_to_public: boolean;
  health_check: HealthCheckInput | null;
}

export const bulkCreateSchema = lenient(
  Joi.object({ endpoints: Joi.array().items(createItem).max(1000).required() }),
);

/** The older single form: the same fields, the deployment in the path, `version` required. */
export const singleCreateSchema = lenient(
  Joi.object({ ...createFields, version: Joi.string().max(16).required() }),
);

export const bulkDeleteSchema = lenient(
  Joi.object({
    endpoints: Joi.array()
      .items(Joi.object(deploymentKeys).or("deployment_id", "endpoint_id"))
      .max(1000)
      .required(),
  }),
);

const replica = Joi.object({
  session_id: uuid.required(),
  route_id: uuid.required(),
  kernel_host: host.required(),
  kernel_port: tcpPort.options({ convert: true }).required(),
  traffic_ratio: Joi.number().min(0).max(10).default(1),
});

export interface ReplicaInput {
  session_id: string;
  route_id: string;
  kernel_host: string;
  kernel_port: number;
  traffic_ratio: number;
}

export const bulkRoutesSchema = lenient(
  Joi.object({
    endpoints: Joi.array()
      .items(
        Joi.object({ ...deploymentKeys, routes: Joi.array().items(replica).max(64).required() }).or(
          "deployment_id",
          "endpoint_id",
        ),
      )
      .max(1000)
      .required(),
  }),
);

export const bulkUnregisterSchema = lenient(
  Joi.object({
    endpoints: Joi.array()
      .items(
        Joi.object({
          ...deploymentKeys,
          route_ids: Joi.array().items(uuid).max(1000).required(),
        }).or("deployment_id", "endpoint_id"),
      )
      .max(1000)
      .required(),
  }),
);

export interface DeploymentRef {
  deployment_id?: string;
  endpoint_id?: string;
}

export const tokenSchema = lenient(
  Joi.object({
    user_uuid: uuid.required(),
    // An ISO 8601 time (any offset), or unix seconds from the older path.
    exp: Joi.alternatives().try(Joi.number().min(0), Joi.date().iso()).required(),
  }),
);

export const healthCheckUpdateSchema = lenient(
  Joi.object({ health_check: healthCheck.required() }),
);

export const confSchema = lenient(
  Joi.object({
    login_session_token: Joi.string().max(4096).allow(null, "").required(),
    kernel_host: host.required(),
    kernel_port: tcpPort.options({ convert: true }).required(),
    session: Joi.object({
      id: uuid.required(),
      user_uuid: uuid.allow(null).default(null),
      project_id: uuid.allow(null),
      group_id: uuid.allow(null),
      access_key: Joi.string().min(1).max(255).required(),
      domain_name: Joi.string().max(255).allow(null).default(null),
    }).required(),
  }),
);

export interface ConfInput {
  login_session_token: string | null;
  kernel_host: string;
  kernel_port: number;
  session: {
    id: string;
    user_uuid: string | null;
    project_id?: string | null;
    group_id?: string | null;
    access_key: string;
    domain_name: string | null;
  };
}

/** What a browser may ask of `/v2/proxy/{token}/{session_id}/add` and `/v2/proxy/auth`. */
export const APP_PROTOCOLS = ["http", "tcp", "preopen", "vnc", "rdp", "grpc", "h2"] as const;
export type AppProtocol = (typeof APP_PROTOCOLS)[number];

const appRequest = {
  app: Joi.string().min(1).max(63).required(),
  protocol: Joi.string()
    .valid(...APP_PROTOCOLS)
    .required(),
  port: tcpPort.options({ convert: true }),
  subdomain: Joi.string().max(63),
  open_to_public: Joi.boolean().default(false),
  allowed_client_ips: Joi.string().max(8192).allow(""),
  redirect: Joi.string().max(2048).allow("").default(""),
  no_reuse: Joi.boolean().default(false),
};

export const addQuerySchema = lenient(Joi.object(appRequest));

export const authQuerySchema = lenient(
  Joi.object({
    ...appRequest,
    token: Joi.string().max(255).required(),
    session_id: uuid.required(),
  }),
);

export interface AppRequest {
  app: string;
  protocol: AppProtocol;
  port?: number;
  subdomain?: string;
  open_to_public: boolean;
  allowed_client_ips?: string;
  redirect: string;
  no_reuse: boolean;
}

export interface AuthQuery extends AppRequest {
  token: string;
  session_id: string;
}

/** The deployment an item names, by its new name or its old one. */
export const deploymentOf = (item: DeploymentRef): string =>
  (item.deployment_id ?? item.endpoint_id)!;
