import type http from "node:http";
import net from "node:net";
import type { Duplex } from "node:stream";
import proxyaddr from "proxy-addr";
import type { Upstream } from "../client/route.js";
import { notFound, unavailable } from "../errors.js";
import { credentialsOf, decideAccess, type AccessDecision } from "./access.js";
import { UPSTREAM_CONNECT_TIMEOUT_MS, isRefusal, type DataPlane } from "./data-plane.js";
import { requestHead, upstreamRequestHeaders } from "./forwarding.js";
import { refusal } from "./http-forwarder.js";
import { badGateway, writeRawProblem } from "./proxy-problem.js";
import type { ServedRoute } from "./route-index.js";
import { openTunnel } from "./tunnel.js";

const STATUS_LINE = /^HTTP\/1\.[01] (\d{3})/;

/**
 * A request asking to switch protocols (a WebSocket): access is checked like any request, then
 * the request head goes to an upstream over a plain socket and, from there on, bytes flow both
 * ways untouched, the upstream's 101 included.
 */
export function handleUpgrade(
  plane: DataPlane,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  socket.on("error", () => socket.destroy());
  const served = plane.lookup(req);
  if (served === undefined || served.route.protocol !== "http") {
    plane.metrics.request("ws", 404);
    writeRawProblem(socket, notFound("No route is served here."));
    return;
  }
  const clientAddress = proxyaddr(req, plane.trusted);
  const credentials = credentialsOf(req.headers, served.permitCookie);
  decideAccess(served, clientAddress, credentials, plane.verifier).then(
    (decision) => {
      if (!decision.allowed) {
        plane.metrics.denied(decision.reason);
        plane.metrics.request("ws", decision.status);
        writeRawProblem(socket, refusal(decision));
        return;
      }
      connect(plane, served, req, socket, head, decision, new Set());
    },
    () => {
      plane.metrics.request("ws", 503);
      writeRawProblem(socket, unavailable("The access check failed."));
    },
  );
}

function connect(
  plane: DataPlane,
  served: ServedRoute,
  req: http.IncomingMessage,
  socket: Duplex,
  head: Buffer,
  decision: Extract<AccessDecision, { allowed: true }>,
  tried: Set<Upstream>,
): void {
  if (socket.destroyed) return;
  const upstream = served.balancer.pick(Date.now(), tried);
  if (upstream === undefined) {
    plane.metrics.request("ws", 503);
    writeRawProblem(socket, unavailable("No upstream of this route is available."));
    return;
  }
  tried.add(upstream);
  const headers = upstreamRequestHeaders(req.headers, {
    peerAddress: req.socket.remoteAddress ?? "",
    peerTrusted: plane.trusted(req.socket.remoteAddress ?? "", 0),
    proto: plane.tls ? "https" : "http",
    stripAuthorization: decision.stripAuthorization,
    upgrade: String(req.headers.upgrade ?? "websocket"),
    ...(decision.stripPermitCookie ? { permitCookie: served.permitCookie } : {}),
  });
  const outgoing = net.connect({ host: upstream.host, port: upstream.port, noDelay: true });
  outgoing.setTimeout(UPSTREAM_CONNECT_TIMEOUT_MS, () => {
    const error: NodeJS.ErrnoException = new Error("upstream connect timed out");
    error.code = "ETIMEDOUT";
    outgoing.destroy(error);
  });
  const failBeforeConnect = (error: Error): void => {
    plane.metrics.upstreamErrors.inc();
    if (isRefusal(error)) {
      served.balancer.markRefused(upstream, Date.now());
      connect(plane, served, req, socket, head, decision, tried);
      return;
    }
    plane.metrics.request("ws", 502);
    writeRawProblem(socket, badGateway("The route's upstream did not answer."));
  };
  outgoing.once("error", failBeforeConnect);
  const abandon = (): void => {
    outgoing.destroy();
  };
  socket.once("close", abandon);
  outgoing.once("connect", () => {
    outgoing.setTimeout(0);
    outgoing.off("error", failBeforeConnect);
    socket.off("close", abandon);
    served.balancer.markConnected(upstream);
    outgoing.write(requestHead(req.method ?? "GET", req.url ?? "/", headers));
    if (head.length > 0) outgoing.write(head);
    outgoing.once("data", (chunk: Buffer) => {
      const status = STATUS_LINE.exec(chunk.subarray(0, 16).toString("latin1"));
      plane.metrics.request("ws", status === null ? 502 : Number(status[1]));
    });
    openTunnel(plane, served.route.id, "ws", socket, outgoing);
  });
}
