import http from "node:http";
import type { HealthCheck, Upstream } from "../client/route.js";
import type { IndexUpdate } from "./route-index.js";
import type { UpstreamBalancer } from "./upstream-balancer.js";

/** One GET of the health check's path: healthy on 2xx or 3xx within `max_wait_s`. */
export function probeUpstream(upstream: Upstream, check: HealthCheck): Promise<boolean> {
  return new Promise((resolve) => {
    const request = http.get({
      host: upstream.host,
      port: upstream.port,
      path: check.path,
      agent: false,
      timeout: check.max_wait_s * 1000,
      headers: { "user-agent": "appproxy-worker-health-check" },
    });
    request.once("response", (answer) => {
      answer.resume();
      const status = answer.statusCode ?? 0;
      resolve(status >= 200 && status < 400);
    });
    request.once("timeout", () => request.destroy(new Error("health check timed out")));
    request.once("error", () => resolve(false));
  });
}

/**
 * Runs the health checks of the routes that have one: every `interval_s` each upstream is probed;
 * one that fails is taken out of its balancer until a probe passes again. Probes follow the
 * balancer, so an unchanged route keeps its probes (and their verdicts) across table versions.
 */
export class HealthProber {
  readonly #probes = new Map<UpstreamBalancer, NodeJS.Timeout>();

  constructor(
    private readonly onChange: (upstream: Upstream, healthy: boolean) => void = () => {},
  ) {}

  /**
   * Follows a change of the index: probes stop for balancers no route uses any more and start for
   * new balancers of routes with a health check. Work in proportion to the change.
   */
  follow(update: Pick<IndexUpdate, "started" | "retired">): void {
    for (const balancer of update.retired) {
      const timer = this.#probes.get(balancer);
      if (timer !== undefined) this.#stop(balancer, timer);
    }
    for (const served of update.started) {
      const check = served.route.health_check;
      if (check != null && !this.#probes.has(served.balancer)) this.#start(served.balancer, check);
    }
  }

  stopAll(): void {
    for (const [balancer, timer] of this.#probes) this.#stop(balancer, timer);
  }

  #start(balancer: UpstreamBalancer, check: HealthCheck): void {
    const round = (): void => {
      for (const upstream of balancer.upstreams) {
        void probeUpstream(upstream, check).then((healthy) => {
          if (!this.#probes.has(balancer) || balancer.isHealthy(upstream) === healthy) return;
          balancer.setHealthy(upstream, healthy);
          this.onChange(upstream, healthy);
        });
      }
    };
    const timer = setInterval(round, check.interval_s * 1000);
    timer.unref();
    this.#probes.set(balancer, timer);
    round();
  }

  /** A probe in flight ends by itself (max_wait_s); its verdict is then dropped. */
  #stop(balancer: UpstreamBalancer, timer: NodeJS.Timeout): void {
    clearInterval(timer);
    this.#probes.delete(balancer);
  }
}
