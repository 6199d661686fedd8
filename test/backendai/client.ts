import type { ApiAnswer } from "../support/harness.js";
import { TOKENS } from "../support/harness.js";

/** Requests to the Backend.AI listener as the Manager sends them: JSON, the secret in a header. */
export class BackendAiClient {
  constructor(
    readonly baseUrl: string,
    readonly headers: Record<string, string> = { "X-BackendAI-Token": TOKENS.backendai },
  ) {}

  as(headers: Record<string, string>): BackendAiClient {
    return new BackendAiClient(this.baseUrl, headers);
  }

  async request<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
    redirect: "follow" | "manual" = "follow",
  ): Promise<ApiAnswer<T>> {
    const init: RequestInit = { method, headers: { ...this.headers, ...headers }, redirect };
    if (body !== undefined) {
      (init.headers as Record<string, string>)["content-type"] = "application/json";
      init.body = typeof body === "string" ? body : JSON.stringify(body);
    }
    const res = await fetch(this.baseUrl + path, init);
    const text = await res.text();
    let parsed: unknown = text;
    if (text && /json/.test(res.headers.get("content-type") ?? "")) parsed = JSON.parse(text);
    return { status: res.status, headers: res.headers, body: parsed as T };
  }

  get<T = Record<string, unknown>>(path: string, headers?: Record<string, string>) {
    return this.request<T>("GET", path, undefined, headers);
  }
  post<T = Record<string, unknown>>(path: string, body?: unknown) {
    return this.request<T>("POST", path, body);
  }
  put<T = Record<string, unknown>>(path: string, body?: unknown) {
    return this.request<T>("PUT", path, body);
  }
  delete<T = Record<string, unknown>>(path: string, body?: unknown) {
    return this.request<T>("DELETE", path, body);
  }
}

/** Their error body, checked field by field. */
export function expectProblem(
  answer: ApiAnswer,
  status: number,
  kind: string,
): Record<string, unknown> {
  const body = answer.body as Record<string, unknown>;
  if (answer.status !== status || body.type !== `https://api.backend.ai/probs/${kind}`) {
    throw new Error(`expected ${status} ${kind}, got ${answer.status} ${JSON.stringify(body)}`);
  }
  if (typeof body.title !== "string" || typeof body.error_code !== "string") {
    throw new Error(`not their error shape: ${JSON.stringify(body)}`);
  }
  if (answer.headers.get("access-control-allow-origin") !== "*") {
    throw new Error("error without Access-Control-Allow-Origin: *");
  }
  return body;
}

/** A create item as the Manager's bulk call sends it. */
export function endpointItem(deploymentId: string, overrides: Record<string, unknown> = {}) {
  return {
    deployment_id: deploymentId,
    version: "v2",
    service_name: "llama",
    tags: {
      session: {
        user_uuid: "6b0f5c1e-2a45-4e0e-8a55-0c7d2a1b3c4d",
        project_id: "2d0e1f3a-4b5c-4d6e-8f7a-9b0c1d2e3f4a",
        domain_name: "default",
      },
      endpoint: { id: deploymentId, runtime_variant: "vllm", existing_url: null },
    },
    open_to_public: false,
    health_check: null,
    ...overrides,
  };
}
