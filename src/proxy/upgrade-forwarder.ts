import type http from "node:http";
import type net from "node:net";
import type { Duplex } from "node:stream";
import proxyaddr from "proxy-addr";
import { notFound, unavailable } from "../errors.js";
import { credentialsOf, decideAccess, type AccessDecision } from "./access.js";
import type { DataPlane } from "./data-plane.js";
import { requestHead } from "./forwarding.js";
import { refusal, upstreamHeadersFor } from "./http-forwarder.js";
import { badGateway, writeRawProblem } from "./proxy-problem.js";
import type { ServedRoute } from "./route-index.js";
import { openTunnel } from "./tunnel.js";
import { dialUpstream } from "./upstream-dial.js";

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
      connect(plane, served, req, socket, head, decision);
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
): void {
  const headers = upstreamHeadersFor(plane, served, req, decision, {
    upgrade: String(req.headers.upgrade ?? "websocket"),
  });
  const connected = (outgoing: net.Socket): void => {
    outgoing.write(requestHead(req.method ?? "GET", req.url ?? "/", headers));
    if (head.length > 0) outgoing.write(head);
    outgoing.once("data", (chunk: Buffer) => {
      const status = STATUS_LINE.exec(chunk.subarray(0, 16).toString("latin1"));
      plane.metrics.request("ws", status === null ? 502 : Number(status[1]));
    });
    openTunnel(plane, served.route.id, "ws", socket, outgoing);
  };
  dialUpstream(plane, served, socket, connected, (why) => {
    if (why === "no_upstream") {
      plane.metrics.request("ws", 503);
      writeRawProblem(socket, unavailable("No upstream of this route is available."));
      return;
    }
    plane.metrics.request("ws", 502);
    writeRawProblem(socket, badGateway("The route's upstream did not answer."));
  });
}
