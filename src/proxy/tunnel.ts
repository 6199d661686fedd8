import type { Duplex } from "node:stream";
import type { DataPlane } from "./data-plane.js";
import type { TrafficProtocol } from "./metrics.js";

/**
 * Joins a client socket and an upstream socket both ways, with back-pressure (pipe pauses the
 * faster side), until either ends; then both are closed. Bytes count towards the metrics and,
 * as they move, towards the route's activity (a silent tunnel is not activity). The tunnel is
 * registered so that a departing route can have it closed.
 */
export function openTunnel(
  plane: DataPlane,
  routeId: string,
  protocol: Extract<TrafficProtocol, "ws" | "tcp">,
  client: Duplex,
  upstream: Duplex,
): void {
  let closed = false;
  const close = (): void => {
    if (closed) return;
    closed = true;
    client.destroy();
    upstream.destroy();
    untrack();
    plane.metrics.connectionClosed(protocol);
  };
  const untrack = plane.tunnels.track({ routeId, close });
  plane.metrics.connectionOpened(protocol);
  client.on("data", (chunk: Buffer) => {
    plane.metrics.bytes(chunk.length, 0);
    plane.activity.moved(routeId);
  });
  upstream.on("data", (chunk: Buffer) => {
    plane.metrics.bytes(0, chunk.length);
    plane.activity.moved(routeId);
  });
  for (const socket of [client, upstream]) {
    socket.once("close", close);
    socket.once("error", close);
  }
  client.pipe(upstream);
  upstream.pipe(client);
}
