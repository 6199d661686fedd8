import type net from "node:net";
import { clientAllowed } from "./access.js";
import type { DataPlane } from "./data-plane.js";
import type { ServedRoute } from "./route-index.js";
import { openTunnel } from "./tunnel.js";
import { dialUpstream } from "./upstream-dial.js";

/**
 * A connection to a `tcp` route's port: only allowed_client_ips applies (TCP knows no tokens).
 * The client's bytes wait in its socket, unread, until an upstream has taken the connection;
 * with no upstream to take it the client's connection is closed.
 */
export function handleTcpConnection(
  plane: DataPlane,
  served: ServedRoute,
  client: net.Socket,
): void {
  client.on("error", () => client.destroy());
  if (!clientAllowed(served, client.remoteAddress ?? "")) {
    plane.metrics.denied("client_ip");
    client.destroy();
    return;
  }
  dialUpstream(
    plane,
    served,
    client,
    (outgoing) => openTunnel(plane, served.route.id, "tcp", client, outgoing),
    () => client.destroy(),
  );
}
