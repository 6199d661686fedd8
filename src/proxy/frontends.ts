import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import type { DataPlane } from "./data-plane.js";
import { handleRequest } from "./http-forwarder.js";
import type { ProxySettings } from "./settings.js";
import { handleTcpConnection } from "./tcp-forwarder.js";
import { handleUpgrade } from "./upgrade-forwarder.js";

/** The traffic listeners of one worker. */
export interface Frontends {
  /** Where traffic is accepted: every port of the range, or the wildcard port. */
  readonly addresses: net.AddressInfo[];
  /** Stops accepting connections; open ones stay. */
  stopAccepting(): void;
  /** Resolves once every HTTP connection has ended, or after `timeoutMs` having cut the rest. */
  drainHttp(timeoutMs: number): Promise<void>;
  /** Reads TLS_CERT_FILE and TLS_KEY_FILE again; open connections keep their session. */
  reloadTls(): void;
}

type TrafficServer = http.Server | https.Server;

/** The status line's code and reason for what the parser refused, as Node's own answer has it. */
function clientErrorStatus(error: NodeJS.ErrnoException): string {
  switch (error.code) {
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return "408 Request Timeout";
    case "HPE_HEADER_OVERFLOW":
      return "431 Request Header Fields Too Large";
    default:
      return "400 Bad Request";
  }
}

function readTls(settings: ProxySettings): { cert: Buffer; key: Buffer } | undefined {
  if (settings.tls === null) return undefined;
  return { cert: readFileSync(settings.tls.certFile), key: readFileSync(settings.tls.keyFile) };
}

function listen(server: net.Server, host: string, port: number): Promise<net.AddressInfo> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error): void =>
      reject(new Error(`cannot listen on ${host}:${port}: ${error.message}`));
    server.once("error", fail);
    server.listen({ host, port }, () => {
      server.off("error", fail);
      resolve(server.address() as net.AddressInfo);
    });
  });
}

/**
 * Stops accepting connections. close()'s callback waits for every connection to end, which is
 * the drain's business (with its deadline): the listening socket itself is gone at once.
 */
function stopListening(server: net.Server): void {
  if (server.listening) server.close();
}

/**
 * Opens the worker's traffic listeners. Port mode: one listener per port of the range, all bound
 * at start; each connection goes to the TCP forwarder when its port holds a `tcp` route now, and
 * to the shared HTTP(S) server otherwise (which answers 404 where the port holds nothing).
 * Wildcard mode: the HTTP(S) server itself listens on the wildcard port.
 */
export async function openFrontends(settings: ProxySettings, plane: DataPlane): Promise<Frontends> {
  const tls = readTls(settings);
  const onRequest: http.RequestListener = (req, res) => handleRequest(plane, req, res);
  const headersTimeout = settings.headersTimeoutS * 1000;
  const options: http.ServerOptions = {
    headersTimeout,
    // Long uploads and long polls are the app's business: no whole-request deadline.
    requestTimeout: 0,
    keepAliveTimeout: 65_000,
    // How often slow clients are looked for: a client is cut between headersTimeout and this
    // much later (Node's 30 s default would more than double a 20 s deadline).
    connectionsCheckingInterval: Math.min(30_000, Math.max(250, headersTimeout / 4)),
  };
  const server: TrafficServer =
    tls === undefined
      ? http.createServer(options, onRequest)
      : https.createServer({ ...tls, ...options }, onRequest);
  if (settings.frontendMode === "port") {
    // In port mode the server never listens: each port's listener hands it connections. Node
    // starts watching connections for headersTimeout (and knowing which are idle) on the
    // server's "listening" event; without it a client sending its headers byte by byte would
    // hold a connection for ever. Told here, as its own listener would. close() stops it.
    server.emit("listening");
  }
  server.on("upgrade", (req: http.IncomingMessage, socket, head: Buffer) => {
    upgraded.add(socket);
    plane.metrics.connectionClosed("http");
    handleUpgrade(plane, req, socket, head);
  });
  const upgraded = new WeakSet<object>();
  // Every open HTTP connection, for the drain's deadline. Which of them are idle, Node knows: it
  // watches every connection of a listening server, and a port-mode server was told "listening"
  // above, so closeIdleConnections() covers both modes.
  const httpSockets = new Set<net.Socket>();
  server.on(tls === undefined ? "connection" : "secureConnection", (socket: net.Socket) => {
    httpSockets.add(socket);
    plane.metrics.connectionOpened("http");
    socket.once("close", () => {
      httpSockets.delete(socket);
      if (!upgraded.has(socket)) plane.metrics.connectionClosed("http");
    });
  });
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (socket.writable)
      socket.end(`HTTP/1.1 ${clientErrorStatus(error)}\r\nconnection: close\r\n\r\n`);
    socket.destroy();
  });

  const listeners: net.Server[] = [];
  const addresses: net.AddressInfo[] = [];
  try {
    if (settings.frontendMode === "wildcard") {
      listeners.push(server);
      addresses.push(await listen(server, settings.bindHost, settings.wildcardTrafficPort ?? 80));
    } else {
      const [first, last] = settings.portRange ?? [0, -1];
      const servesHttp = settings.protocols.includes("http");
      for (let port = first; port <= last; port += 1) {
        // Small writes go out at once (no Nagle): a proxy must not hold an answer's last bytes
        // back waiting for the client's delayed ACK. http.Server sets this for the connections
        // it accepts itself, not for those handed to it here.
        const listener = net.createServer({ noDelay: true }, (socket) => {
          const served = plane.index().byPort.get(port);
          if (served?.route.protocol === "tcp") handleTcpConnection(plane, served, socket);
          else if (servesHttp || served !== undefined) server.emit("connection", socket);
          else socket.destroy();
        });
        listeners.push(listener);
        addresses.push(await listen(listener, settings.bindHost, port));
      }
    }
  } catch (error) {
    for (const listener of listeners) stopListening(listener);
    throw error;
  }

  return {
    addresses,
    stopAccepting: () => {
      for (const listener of listeners) stopListening(listener);
    },
    drainHttp: async (timeoutMs) => {
      // Keep-alive connections that finish a request from now on are closed, not kept.
      server.keepAliveTimeout = 1;
      const open = (): net.Socket[] => [...httpSockets].filter((socket) => !upgraded.has(socket));
      server.closeIdleConnections();
      const deadline = Date.now() + timeoutMs;
      while (open().length > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        server.closeIdleConnections();
      }
      for (const socket of open()) socket.destroy();
      // Port mode: stops the watch started with "listening" (the listeners are closed already).
      if (!server.listening) server.close();
    },
    reloadTls: () => {
      const fresh = readTls(settings);
      if (fresh !== undefined && server instanceof https.Server) server.setSecureContext(fresh);
    },
  };
}
