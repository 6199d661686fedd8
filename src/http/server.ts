import http from "node:http";
import type { Socket } from "node:net";
import type { Express } from "express";

/**
 * An HTTP server for `app` whose requests and responses are created with the app's own
 * prototypes. Express otherwise re-parents both objects on every request
 * (`Object.setPrototypeOf`), which costs them their hidden classes and every property access
 * after it its fast path: about half of Express's CPU per request on this project's benchmark
 * machine. With the prototypes already in place that call changes nothing.
 */
export interface ConnectionLimits {
  maxConnections: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  idleTimeoutMs: number;
}

/**
 * The longest a timed-out connection stays open past its time: node looks for expired header and
 * request times this often (30 s by default), so it is kept small beside the shortest time-out.
 */
const checkEvery = (limits: ConnectionLimits): number =>
  Math.max(250, Math.min(5000, Math.floor(limits.headersTimeoutMs / 4)));

/**
 * An HTTP server for `app` (see below) that holds no connection for free: one that sends nothing
 * (or never finishes its headers) is closed after `headersTimeoutMs`, a request that does not
 * arrive whole after `requestTimeoutMs`, a kept-alive connection with no request after
 * `idleTimeoutMs`, and connections past `maxConnections` are refused at once. These apply only
 * while a connection speaks HTTP: an upgraded stream is no longer the HTTP server's, and the hub
 * keeps it alive with pings.
 */
export function createHttpServer(app: Express, limits: ConnectionLimits): http.Server {
  function AppRequest(this: http.IncomingMessage, socket: Socket) {
    Reflect.apply(http.IncomingMessage, this, [socket]);
  }
  AppRequest.prototype = app.request;
  function AppResponse(
    this: http.ServerResponse,
    req: http.IncomingMessage,
    options?: http.ServerOptions,
  ) {
    // Node calls it with the request and its write options; pass both on as they are.
    Reflect.apply(http.ServerResponse, this, [req, options]);
  }
  AppResponse.prototype = app.response;
  const server = http.createServer(
    {
      IncomingMessage: AppRequest as unknown as typeof http.IncomingMessage,
      ServerResponse: AppResponse as unknown as typeof http.ServerResponse,
      connectionsCheckingInterval: checkEvery(limits),
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: Math.max(limits.requestTimeoutMs, limits.headersTimeoutMs),
      keepAliveTimeout: limits.idleTimeoutMs,
    },
    app,
  );
  server.maxConnections = limits.maxConnections;
  return server;
}
