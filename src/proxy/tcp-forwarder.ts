import net from "node:net";
import type { Upstream } from "../client/route.js";
import { clientAllowed } from "./access.js";
import { UPSTREAM_CONNECT_TIMEOUT_MS, isRefusal, type DataPlane } from "./data-plane.js";
import type { ServedRoute } from "./route-index.js";
import { openTunnel } from "./tunnel.js";

/**
 * A connection to a `tcp` route's port: only allowed_client_ips applies (TCP knows no tokens).
 * The client's bytes wait in its socket, unread, until an upstream has taken the connection.
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
  connect(plane, served, client, new Set());
}

function connect(
  plane: DataPlane,
  served: ServedRoute,
  client: net.Socket,
  tried: Set<Upstream>,
): void {
  if (client.destroyed) return;
  const upstream = served.balancer.pick(Date.now(), tried);
  if (upstream === undefined) {
    client.destroy();
    return;
  }
  tried.add(upstream);
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
      connect(plane, served, client, tried);
      return;
    }
    client.destroy();
  };
  outgoing.once("error", failBeforeConnect);
  const abandon = (): void => {
    outgoing.destroy();
  };
  client.once("close", abandon);
  outgoing.once("connect", () => {
    outgoing.setTimeout(0);
    outgoing.off("error", failBeforeConnect);
    client.off("close", abandon);
    served.balancer.markConnected(upstream);
    openTunnel(plane, served.route.id, "tcp", client, outgoing);
  });
}
