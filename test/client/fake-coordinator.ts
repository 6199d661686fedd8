import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
} from "node:http";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import WebSocket, { WebSocketServer } from "ws";
import {
  WorkerClient,
  type Route,
  type WorkerClientOptions,
  type WorkerRegistration,
} from "../../src/client/index.js";

export interface RecordedRegistration {
  headers: IncomingHttpHeaders;
  body: unknown;
}

export interface RecordedUpgrade {
  workerId: string;
  since: string | null;
  authorization: string | undefined;
}

/** The worker identity the next registration hands out. */
export interface FakeIdentity {
  id: string;
  token: string;
}

/** How the fake spells `stream_url`: a good absolute URL, a relative one, or one bound to 0.0.0.0. */
export type StreamUrlStyle = "absolute" | "relative" | "unroutable";

export interface WorkerFrameRecord {
  frame: { type: string } & Record<string, unknown>;
  receivedAt: number;
}

/** One accepted stream, as the coordinator side sees it. */
export class FakeStream {
  readonly frames: WorkerFrameRecord[] = [];
  closeCode: number | undefined;

  constructor(
    readonly workerId: string,
    readonly socket: WebSocket,
  ) {
    socket.on("message", (data) => {
      const frame: unknown = JSON.parse(String(data));
      if (typeof frame === "object" && frame !== null && "type" in frame) {
        this.frames.push({
          frame: frame as WorkerFrameRecord["frame"],
          receivedAt: Date.now(),
        });
      }
    });
    socket.on("close", (code) => {
      this.closeCode = code;
    });
  }

  send(frame: object): void {
    this.socket.send(JSON.stringify(frame));
  }

  framesOfType(type: string): WorkerFrameRecord["frame"][] {
    return this.frames.filter((record) => record.frame.type === type).map((record) => record.frame);
  }
}

/**
 * A coordinator reduced to what the worker client talks to: POST /workers/register and the
 * stream upgrade, on a loopback port of its own. Tests drive the stream side by hand.
 */
export class FakeCoordinator {
  readonly registrations: RecordedRegistration[] = [];
  readonly upgrades: RecordedUpgrade[] = [];
  readonly streams: FakeStream[] = [];
  /** Identities handed out by the next registrations, in order; the last one repeats. */
  identities: FakeIdentity[] = [{ id: "w-1", token: "worker-token-1" }];
  /** The table (version and routes) the next registration answers with. */
  table: { version: number; routes: Route[] } = { version: 0, routes: [] };
  /** Status answered to registrations instead of success, while set. */
  registrationStatus: number | undefined;
  /** Worker id to the HTTP status its stream upgrade is refused with. */
  readonly refusedStreams = new Map<string, number>();
  streamUrlStyle: StreamUrlStyle = "absolute";
  /** Announced in hello; the fake itself never pings, so a short one makes streams look dead. */
  heartbeatIntervalS = 10;

  readonly #server: Server;
  readonly #wss = new WebSocketServer({ noServer: true });
  readonly #tokens = new Map<string, string>();
  /** Registered names and the worker holding each, as the coordinator keeps them. */
  readonly #names = new Map<string, FakeIdentity>();

  private constructor() {
    this.#server = createServer((request, response) => {
      void this.#onRequest(request).then(({ status, body }) => {
        response.writeHead(status, { "Content-Type": "application/json" });
        response.end(JSON.stringify(body));
      });
    });
    this.#server.on("upgrade", (request, socket, head) => this.#onUpgrade(request, socket, head));
  }

  static async start(): Promise<FakeCoordinator> {
    const fake = new FakeCoordinator();
    await new Promise<void>((resolve) => fake.#server.listen(0, "127.0.0.1", resolve));
    return fake;
  }

  get port(): number {
    return (this.#server.address() as AddressInfo).port;
  }

  /** A worker client of this fake that reconnects within milliseconds; not started. */
  client(
    registration: WorkerRegistration,
    overrides: Partial<WorkerClientOptions> = {},
  ): WorkerClient {
    return new WorkerClient({
      coordinatorUrl: this.url,
      registrationToken: "registration-token",
      registration,
      reconnectMinMs: 10,
      reconnectMaxMs: 50,
      ...overrides,
    });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The most recent stream, once there is one. */
  get lastStream(): FakeStream | undefined {
    return this.streams.at(-1);
  }

  async close(): Promise<void> {
    for (const stream of this.streams) stream.socket.terminate();
    this.#wss.close();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #onRequest(request: IncomingMessage): Promise<{ status: number; body: unknown }> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    if (request.method !== "POST" || request.url !== "/workers/register") {
      return { status: 404, body: { type: "about:blank", title: "Not Found", status: 404 } };
    }
    const body: unknown = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    this.registrations.push({ headers: request.headers, body });
    if (this.registrationStatus !== undefined) {
      const status = this.registrationStatus;
      return {
        status,
        body: { type: "about:blank", title: "Refused", status, detail: "by the test" },
      };
    }
    // Like the coordinator: a known name is answered only to its worker's token, and as itself.
    const name = (body as { name?: unknown }).name;
    const known = typeof name === "string" ? this.#names.get(name) : undefined;
    if (known !== undefined) {
      if (request.headers["x-worker-token"] !== known.token) {
        return {
          status: 409,
          body: { type: "about:blank", title: "Conflict", status: 409, detail: "name taken" },
        };
      }
      return { status: 200, body: this.#answer(known) };
    }
    const identity = this.identities.length > 1 ? this.identities.shift() : this.identities[0];
    if (identity === undefined) throw new Error("the fake coordinator has no identity to hand out");
    this.#tokens.set(identity.id, identity.token);
    if (typeof name === "string") this.#names.set(name, identity);
    return { status: 201, body: this.#answer(identity) };
  }

  /**
   * Forgets a worker as `DELETE /workers/{id}` does: its name is free again and its stream is
   * refused with 404.
   */
  remove(workerId: string): void {
    for (const [name, identity] of this.#names) {
      if (identity.id === workerId) this.#names.delete(name);
    }
    this.refusedStreams.set(workerId, 404);
    for (const stream of this.streams) {
      if (stream.workerId === workerId) stream.socket.terminate();
    }
  }

  #answer(identity: FakeIdentity): object {
    return {
      worker: { id: identity.id, name: "w1", status: "registered" },
      token: identity.token,
      stream_url: this.#streamUrl(identity.id),
      heartbeat_interval_s: 10,
      version: this.table.version,
      routes: this.table.routes,
    };
  }

  #streamUrl(workerId: string): string {
    const path = `/workers/${workerId}/stream`;
    switch (this.streamUrlStyle) {
      case "absolute":
        return `ws://127.0.0.1:${this.port}${path}`;
      case "relative":
        return path;
      case "unroutable":
        return `ws://0.0.0.0:${this.port}${path}`;
    }
  }

  #onUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = new URL(request.url ?? "/", "http://fake");
    const match = /^\/workers\/([^/]+)\/stream$/.exec(url.pathname);
    const workerId = match?.[1] ?? "";
    this.upgrades.push({
      workerId,
      since: url.searchParams.get("since"),
      authorization: request.headers.authorization,
    });
    const refusal =
      this.refusedStreams.get(workerId) ??
      (request.headers.authorization === `Bearer ${this.#tokens.get(workerId)}` ? undefined : 401);
    if (refusal !== undefined) {
      socket.end(`HTTP/1.1 ${refusal} Refused\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      return;
    }
    this.#wss.handleUpgrade(request, socket, head, (ws) => {
      const stream = new FakeStream(workerId, ws);
      this.streams.push(stream);
      stream.send({
        type: "hello",
        protocol: 1,
        instance_id: "fake-1",
        heartbeat_interval_s: this.heartbeatIntervalS,
      });
    });
  }
}
