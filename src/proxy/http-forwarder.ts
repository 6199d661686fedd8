import http from "node:http";
import proxyaddr from "proxy-addr";
import type { Upstream } from "../client/route.js";
import { forbidden, notFound, unauthorized, unavailable } from "../errors.js";
import { credentialsOf, decideAccess, type AccessDecision } from "./access.js";
import { UPSTREAM_CONNECT_TIMEOUT_MS, isRefusal, type DataPlane } from "./data-plane.js";
import {
  downstreamResponseHeaders,
  upstreamRequestHeaders,
  type ForwardingContext,
} from "./forwarding.js";
import { badGateway, writeProblem } from "./proxy-problem.js";
import type { ServedRoute } from "./route-index.js";
import { SETUP_PATH, serveSetup } from "./setup-path.js";

/** Methods that may be sent again to another upstream when the first never took the request. */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "DELETE", "PUT", "TRACE"]);

/** Bytes a client socket had moved when its previous request ended. */
const socketMarks = new WeakMap<object, { read: number; written: number }>();

/** Serves one HTTP request: the route's setup path, a refusal, or the upstream's answer. */
export function handleRequest(
  plane: DataPlane,
  req: http.IncomingMessage,
  res: http.ServerResponse,
): void {
  const served = plane.lookup(req);
  res.once("close", () => account(plane, req, res));
  if (served === undefined || served.route.protocol !== "http") {
    writeProblem(res, notFound("No route is served here."));
    return;
  }
  const clientAddress = proxyaddr(req, plane.trusted);
  const target = req.url ?? "/";
  if (target === SETUP_PATH || target.startsWith(`${SETUP_PATH}?`)) {
    void serveSetup(plane, served, clientAddress, req, res);
    return;
  }
  const credentials = credentialsOf(req.headers, served.permitCookie);
  decideAccess(served, clientAddress, credentials, plane.verifier).then(
    (decision) => {
      if (!decision.allowed) {
        plane.metrics.denied(decision.reason);
        writeProblem(res, refusal(decision));
        return;
      }
      forward(plane, served, req, res, decision, new Set());
    },
    (error: unknown) => {
      plane.logger.error("access check failed", { route: served.route.id, error: String(error) });
      writeProblem(res, unavailable("The access check failed."));
    },
  );
}

export function refusal(decision: Extract<AccessDecision, { allowed: false }>) {
  return decision.status === 403
    ? forbidden("This client address may not reach this route.")
    : unauthorized("A valid access token for this route is needed (setup URL or bearer token).");
}

/**
 * The headers a request (or an upgrade, with `upgrade`) carries to the route's upstream, as the
 * access decision and the peer's trust allow (forwarding.ts).
 */
export function upstreamHeadersFor(
  plane: DataPlane,
  served: ServedRoute,
  req: http.IncomingMessage,
  decision: Extract<AccessDecision, { allowed: true }>,
  extra: Pick<ForwardingContext, "upgrade"> = {},
): http.OutgoingHttpHeaders {
  const peerAddress = req.socket.remoteAddress ?? "";
  return upstreamRequestHeaders(req.headers, {
    peerAddress,
    peerTrusted: plane.trusted(peerAddress, 0),
    proto: plane.tls ? "https" : "http",
    stripAuthorization: decision.stripAuthorization,
    ...extra,
    ...(decision.stripPermitCookie ? { permitCookie: served.permitCookie } : {}),
  });
}

function hasBody(req: http.IncomingMessage): boolean {
  const length = req.headers["content-length"];
  return req.headers["transfer-encoding"] !== undefined || (length !== undefined && length !== "0");
}

function forward(
  plane: DataPlane,
  served: ServedRoute,
  req: http.IncomingMessage,
  res: http.ServerResponse,
  decision: Extract<AccessDecision, { allowed: true }>,
  tried: Set<Upstream>,
): void {
  if (res.destroyed) return;
  const upstream = served.balancer.pick(Date.now(), tried);
  if (upstream === undefined) {
    writeProblem(res, unavailable("No upstream of this route is available."));
    return;
  }
  tried.add(upstream);
  const headers = upstreamHeadersFor(plane, served, req, decision);
  const outgoing = http.request({
    host: upstream.host,
    port: upstream.port,
    method: req.method,
    path: req.url,
    headers,
    agent: plane.agent,
  });
  let connectTimer: NodeJS.Timeout | undefined;
  outgoing.once("socket", (socket) => {
    if (!socket.connecting) return;
    connectTimer = setTimeout(() => {
      const error: NodeJS.ErrnoException = new Error("upstream connect timed out");
      error.code = "ETIMEDOUT";
      outgoing.destroy(error);
    }, UPSTREAM_CONNECT_TIMEOUT_MS);
    socket.once("connect", () => clearTimeout(connectTimer));
  });
  outgoing.once("response", (answer) => {
    clearTimeout(connectTimer);
    served.balancer.markConnected(upstream);
    answer.once("error", () => res.destroy());
    answer.once("aborted", () => res.destroy());
    res.writeHead(answer.statusCode ?? 502, downstreamResponseHeaders(answer.headers));
    const routeId = served.route.id;
    plane.activity.moved(routeId);
    // A long answer (a download, server-sent events) is activity for as long as it moves bytes.
    answer.on("data", () => plane.activity.moved(routeId));
    answer.pipe(res);
  });
  outgoing.once("error", (error) => {
    clearTimeout(connectTimer);
    if (res.destroyed) return;
    plane.metrics.upstreamErrors.inc();
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const refused = isRefusal(error);
    if (refused) served.balancer.markRefused(upstream, Date.now());
    // A request with a body was being streamed and cannot be sent again; one without can.
    const resendable = !hasBody(req) && IDEMPOTENT.has(req.method ?? "");
    const staleKeepAlive =
      outgoing.reusedSocket && (error as NodeJS.ErrnoException).code === "ECONNRESET";
    if (resendable && staleKeepAlive) tried.delete(upstream);
    if (resendable && (refused || staleKeepAlive)) {
      forward(plane, served, req, res, decision, tried);
      return;
    }
    writeProblem(res, badGateway("The route's upstream did not answer."));
  });
  res.once("close", () => {
    if (!res.writableFinished) outgoing.destroy();
  });
  if (hasBody(req)) req.pipe(outgoing);
  else outgoing.end();
}

/** Counts the request and the bytes its connection moved for it. */
function account(plane: DataPlane, req: http.IncomingMessage, res: http.ServerResponse): void {
  plane.metrics.request("http", res.headersSent ? res.statusCode : 499);
  const socket = req.socket;
  const read = socket.bytesRead;
  const written = socket.bytesWritten;
  const mark = socketMarks.get(socket);
  if (mark === undefined) {
    plane.metrics.bytes(read, written);
    socketMarks.set(socket, { read, written });
    return;
  }
  plane.metrics.bytes(read - mark.read, written - mark.written);
  mark.read = read;
  mark.written = written;
}
