import net from "node:net";
import type { Duplex } from "node:stream";
import type { Upstream } from "../client/route.js";
import { UPSTREAM_CONNECT_TIMEOUT_MS, isRefusal, type DataPlane } from "./data-plane.js";
import type { ServedRoute } from "./route-index.js";

/** Why no upstream connection came about: none left to try, or the one tried failed. */
export type DialFailure = "no_upstream" | "upstream_failed";

/**
 * Connects to one of the route's upstreams for a tunnel (a WebSocket or a TCP route): the
 * balancer picks; a connection not made within UPSTREAM_CONNECT_TIMEOUT_MS is given up; an
 * upstream that refuses is marked so and the next one is tried; a client that leaves first
 * takes the attempt with it. `connected` gets the open socket, with no-delay set and its
 * timeout and error handling left to the caller; `failed` is told why there is none.
 */
export function dialUpstream(
  plane: DataPlane,
  served: ServedRoute,
  client: Duplex,
  connected: (outgoing: net.Socket) => void,
  failed: (why: DialFailure) => void,
  tried: Set<Upstream> = new Set(),
): void {
  if (client.destroyed) return;
  const upstream = served.balancer.pick(Date.now(), tried);
  if (upstream === undefined) {
    failed("no_upstream");
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
      dialUpstream(plane, served, client, connected, failed, tried);
      return;
    }
    failed("upstream_failed");
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
    connected(outgoing);
  });
}
