import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import type { Knex } from "knex";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { authorizationOf, bearerToken, type TokenRegistry } from "../auth/tokens.js";
import type { Logger } from "../logger.js";
import { STREAM_PATH, upgradeRequired } from "../http/upgrade-required.js";
import { numberStreams } from "../workers/repository.js";
import { WorkerLookup } from "./worker-lookup.js";
import { CloseCode, FrameError, MAX_INBOUND_FRAME_BYTES } from "./close-codes.js";
import { parseInbound } from "./frames.js";
import type { Hub } from "./hub.js";
import { WorkerSession } from "./session.js";

export interface StreamEndpointEvents {
  frameReceived?(type: string): void;
  disconnected?(code: number): void;
}

function refuse(socket: Duplex, status: number, title: string, detail: string, headers = ""): void {
  const code = title.toLowerCase().replace(/ /g, "_");
  const body = JSON.stringify({ type: `urn:appproxy:problem:${code}`, title, status, detail });
  socket.end(
    `HTTP/1.1 ${status} ${title}\r\n` +
      headers +
      "Content-Type: application/problem+json\r\n" +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      "Connection: close\r\n\r\n" +
      body,
  );
}

/**
 * The WebSocket edge of the stream: authenticates the upgrade (refusing with 401/403/404 before
 * it), validates each inbound frame and hands it to the hub. No diff logic lives here.
 */
export function attachStreamEndpoint(deps: {
  server: Server;
  hub: Hub;
  tokens: TokenRegistry;
  knex: Knex;
  logger: Logger;
  accepting: () => boolean;
  events?: StreamEndpointEvents;
}): WebSocketServer {
  const { hub, tokens, logger, events = {} } = deps;
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_INBOUND_FRAME_BYTES,
    perMessageDeflate: false,
  });

  deps.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    void authorize(req).then(
      (result) => {
        if ("status" in result) {
          return refuse(socket, result.status, result.title, result.detail, result.headers);
        }
        wss.handleUpgrade(req, socket, head, (ws) =>
          open(ws, result.workerId, result.streamSeq, result.since),
        );
      },
      (error: unknown) => {
        logger.warn("stream upgrade failed", { error: String(error) });
        refuse(socket, 503, "Service Unavailable", "The coordinator cannot serve streams now.");
      },
    );
  });

  const workers = new WorkerLookup((ids) => numberStreams(deps.knex, ids));

  async function authorize(
    req: IncomingMessage,
  ): Promise<
    | { workerId: string; streamSeq: number; since: number | undefined }
    | { status: number; title: string; detail: string; headers?: string }
  > {
    const url = new URL(req.url ?? "/", "http://coordinator");
    const match = STREAM_PATH.exec(url.pathname);
    if (!match) return { status: 404, title: "Not Found", detail: "No stream at this path." };
    if (req.headers.upgrade?.toLowerCase() !== "websocket") {
      const { status, title, message } = upgradeRequired();
      return { status, title, detail: message, headers: "Upgrade: websocket\r\n" };
    }
    if (!deps.accepting()) {
      return { status: 503, title: "Service Unavailable", detail: "The coordinator is stopping." };
    }
    const token = bearerToken(authorizationOf(req));
    const principal = token ? tokens.identify(token) : undefined;
    if (!principal) {
      return { status: 401, title: "Unauthorized", detail: "A valid worker token is required." };
    }
    const workerId = match[1]!.toLowerCase();
    if (principal.role !== "worker" || principal.workerId !== workerId) {
      return { status: 403, title: "Forbidden", detail: "This token may not open this stream." };
    }
    const sinceRaw = url.searchParams.get("since");
    let since: number | undefined;
    if (sinceRaw !== null) {
      if (!/^\d{1,15}$/.test(sinceRaw)) {
        return {
          status: 400,
          title: "Bad Request",
          detail: "since must be a version (an integer >= 0).",
        };
      }
      since = Number(sinceRaw);
    }
    const streamSeq = await workers.admit(workerId);
    if (streamSeq === undefined) {
      return { status: 404, title: "Not Found", detail: `Worker ${workerId} does not exist.` };
    }
    return { workerId, streamSeq, since };
  }

  function open(
    ws: WebSocket,
    workerId: string,
    streamSeq: number,
    since: number | undefined,
  ): void {
    const session = new WorkerSession(workerId, ws, new Date(), streamSeq);
    ws.on("pong", () => hub.pong(session));
    ws.on("message", (data: RawData, isBinary: boolean) => {
      try {
        onMessage(data, isBinary);
      } catch (error) {
        // One stream's frame must never take the process, and every other stream, down.
        logger.error("stream frame could not be handled", {
          worker_id: workerId,
          error: String(error),
        });
        session.close(CloseCode.InternalError, "internal error");
        if (ws.readyState === ws.OPEN) ws.terminate();
      }
    });
    const onMessage = (data: RawData, isBinary: boolean): void => {
      if (session.closed) return;
      const text = isBinary ? undefined : rawText(data);
      const parsed = text === undefined ? undefined : parseInbound(text);
      // Worker-chosen type names never become metric labels: unknown ones count as "unknown".
      const type =
        parsed?.kind === "frame"
          ? parsed.frame.type
          : parsed?.kind === "ignored"
            ? "unknown"
            : "invalid";
      events.frameReceived?.(type);
      if (!parsed || parsed.kind === "invalid") {
        const reason = parsed ? parsed.reason : "frames must be JSON text";
        session.closeWith(CloseCode.BadFrame, FrameError.BadFrame, reason);
        return;
      }
      if (parsed.kind === "ignored") return;
      void hub.receive(session, parsed.frame).catch((error: unknown) => {
        logger.warn("stream frame failed", { worker_id: workerId, error: String(error) });
      });
    };
    ws.on("close", (code: number) => {
      events.disconnected?.(code);
      hub.detach(session);
    });
    ws.on("error", (error) => {
      logger.warn("stream error", { worker_id: workerId, error: error.message });
    });
    void hub.attach(session, since);
  }

  return wss;
}

function rawText(data: RawData): string {
  if (Buffer.isBuffer(data)) return data.toString("utf8");
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  return Buffer.from(data).toString("utf8");
}
