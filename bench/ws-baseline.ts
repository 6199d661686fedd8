/**
 * The transport's limit: a bare `ws` server in the bench process with no database and no HTTP,
 * sending each change as a diff-shaped frame straight to its worker's socket. The receiving
 * sockets (plain `ws` clients in the worker process) parse the frame, note the receipt and answer
 * with an ack, as a WorkerClient does.
 */
import { randomUUID } from "node:crypto";
import { WebSocketServer, type WebSocket } from "ws";
import { deferCleanup } from "./cleanup.js";
import { nowMs } from "./support.js";

/** A route as the coordinator would send it, tagged with `seq`. */
export function sampleRoute(seq: number, workerId: string, version: number) {
  const at = new Date().toISOString();
  return {
    id: randomUUID(),
    session_id: `sync-${seq}`,
    kernel_id: null,
    endpoint_id: null,
    app: "jupyter",
    protocol: "http",
    mode: "interactive",
    upstreams: [{ host: "127.0.0.1", port: 8888, weight: 1 }],
    health_check: null,
    worker_selector: {},
    worker_id: workerId,
    port: 20000 + (seq % 1000),
    subdomain: null,
    url: `http://127.0.0.1:${20000 + (seq % 1000)}/`,
    open_to_public: false,
    allowed_client_ips: [],
    user_id: null,
    project_id: null,
    labels: { seq: String(seq) },
    expires_at: null,
    last_activity_at: null,
    version,
    created_at: at,
    updated_at: at,
  };
}

export interface WsBaselineServer {
  url: string;
  /** Waits until `count` sockets are connected. */
  connected(count: number): Promise<void>;
  /** Sends change `seq` to worker `index`; resolves with the send time and the ack's arrival. */
  send(index: number, seq: number): Promise<{ sentAt: number; ackedAt: number }>;
  stop(): Promise<void>;
}

export async function startWsBaseline(): Promise<WsBaselineServer> {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: false });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const stop = deferCleanup(
    "bare ws server",
    () =>
      new Promise<void>((resolve) => {
        for (const client of wss.clients) client.terminate();
        wss.close(() => resolve());
      }),
  );
  const sockets = new Map<number, WebSocket>();
  const acks = new Map<number, (at: number) => void>();
  let joined: (() => void) | undefined;
  let version = 0;
  const workerIds = new Map<number, string>();

  wss.on("connection", (ws, req) => {
    const index = Number(new URL(req.url ?? "/", "http://bench").searchParams.get("w"));
    sockets.set(index, ws);
    workerIds.set(index, randomUUID());
    joined?.();
    ws.on("message", (data) => {
      const at = nowMs();
      const ack = JSON.parse(String(data)) as { seq: number };
      acks.get(ack.seq)?.(at);
      acks.delete(ack.seq);
    });
  });
  const { port } = wss.address() as { port: number };
  return {
    url: `ws://127.0.0.1:${port}`,
    connected: (count) =>
      new Promise<void>((resolve) => {
        const check = () => {
          if (sockets.size < count) return;
          joined = undefined;
          resolve();
        };
        joined = check;
        check();
      }),
    send(index, seq) {
      const socket = sockets.get(index);
      if (!socket) throw new Error(`no socket for worker ${index}`);
      version += 1;
      const frame = JSON.stringify({
        type: "diff",
        from: version - 1,
        to: version,
        upserts: [sampleRoute(seq, workerIds.get(index)!, version)],
        deletes: [],
        digest: "0".repeat(64),
      });
      return new Promise((resolve) => {
        const sentAt = nowMs();
        acks.set(seq, (ackedAt) => resolve({ sentAt, ackedAt }));
        socket.send(frame);
      });
    },
    stop,
  };
}
