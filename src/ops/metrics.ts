import type { Knex } from "knex";
import client from "prom-client";
import { stageHistogram, type StageClock } from "./change-stages.js";
import { readFleetSummary, type FleetSummary } from "./fleet-summary.js";

const STATUSES = ["registered", "alive", "lost", "draining"] as const;

/**
 * This instance's metrics in a registry of its own (several instances can live in one process in
 * tests). Fleet-wide gauges are read from the database at scrape time; counters count what this
 * instance did.
 */
export class Metrics {
  readonly registry = new client.Registry();
  readonly httpDuration: client.Histogram<"method" | "route" | "status">;
  readonly propagation: client.Histogram;
  readonly streamFrames: client.Counter<"direction" | "type">;
  readonly streamDisconnects: client.Counter<"code">;
  readonly reaperRuns: client.Counter<"outcome">;
  readonly failovers: client.Counter;
  readonly activityDropped: client.Counter<"reason">;
  readonly writeSeconds: client.Histogram;
  readonly writeRequests: client.Histogram;
  readonly stages: StageClock;

  /**
   * `eventLoopResolutionMs`: how often the event-loop delay is sampled. Each sample is a timer
   * that wakes the process, idle or not (at 10 ms, about half a percent of a core on a virtual
   * machine); a stall of at least this long is always seen, shorter ones may be missed.
   */
  constructor(knex: Knex, eventLoopResolutionMs = 20) {
    const registers = [this.registry];
    client.collectDefaultMetrics({
      register: this.registry,
      eventLoopMonitoringPrecision: eventLoopResolutionMs,
    });
    this.httpDuration = new client.Histogram({
      name: "appproxy_http_request_duration_seconds",
      help: "HTTP requests by method, path template and status.",
      labelNames: ["method", "route", "status"],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.propagation = new client.Histogram({
      name: "appproxy_propagation_seconds",
      help: "From a change's commit on this instance to a worker's acknowledgement of it.",
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.streamFrames = new client.Counter({
      name: "appproxy_stream_frames_total",
      help: "Stream frames by direction (in, out) and type.",
      labelNames: ["direction", "type"],
      registers,
    });
    this.streamDisconnects = new client.Counter({
      name: "appproxy_stream_disconnects_total",
      help: "Streams closed, by WebSocket close code.",
      labelNames: ["code"],
      registers,
    });
    this.reaperRuns = new client.Counter({
      name: "appproxy_reaper_runs_total",
      help: "Reaper runs by outcome: acted, skipped (another instance held the lock), failed.",
      labelNames: ["outcome"],
      registers,
    });
    this.failovers = new client.Counter({
      name: "appproxy_failovers_total",
      help: "Routes moved off lost workers by this instance's reaper.",
      registers,
    });
    this.activityDropped = new client.Counter({
      name: "appproxy_activity_dropped_total",
      help: "Activity entries dropped: not_own (a route not on the reporting worker's table), bad_time (unreadable, unstorable, or ahead of this clock by more than the allowed skew).",
      labelNames: ["reason"],
      registers,
    });
    this.writeSeconds = new client.Histogram({
      name: "appproxy_write_transaction_seconds",
      help: "This instance's write transactions, from asking for the routing lock to the commit; writers of every instance take turns at that lock.",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.writeRequests = new client.Histogram({
      name: "appproxy_write_transaction_requests",
      help: "Requests answered by one write transaction of this instance (group commit).",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128],
      registers,
    });

    this.stages = stageHistogram(this.registry);

    let summary: Promise<FleetSummary | undefined> | undefined;
    // One database read per scrape, shared by every fleet-wide metric below. While the database
    // cannot be read they are left out of the scrape (neither zero nor stale), so that it still
    // serves what this process counted, the reaper's failures among them, and its process metrics.
    const fleet = () =>
      (summary ??= readFleetSummary(knex)
        .catch(() => undefined)
        .finally(() => setImmediate(() => (summary = undefined))));
    // reset() leaves an unlabelled metric at 0; remove() takes that series out.
    const leaveOut = (metric: { reset(): void; remove(): void }) => {
      metric.reset();
      metric.remove();
    };
    new client.Histogram({
      name: "appproxy_worker_lag_versions",
      help: "Versions each worker that is not lost is behind the routing version, over workers.",
      buckets: [0, 1, 2, 5, 10, 50, 100, 1000, 10000],
      registers,
      async collect() {
        const s = await fleet();
        if (!s) return leaveOut(this);
        this.reset();
        for (const w of s.workers) if (w.status !== "lost") this.observe(w.lag);
      },
    });
    new client.Gauge({
      name: "appproxy_routing_version",
      help: "The routing table's version.",
      registers,
      async collect() {
        const s = await fleet();
        if (!s) return leaveOut(this);
        this.set(s.version);
      },
    });
    new client.Gauge({
      name: "appproxy_routes",
      help: "Routes in the table.",
      registers,
      async collect() {
        const s = await fleet();
        if (!s) return leaveOut(this);
        this.set(s.routes);
      },
    });
    new client.Gauge({
      name: "appproxy_workers",
      help: "Workers by status.",
      labelNames: ["status"],
      registers,
      async collect() {
        const s = await fleet();
        if (!s) return this.reset();
        for (const status of STATUSES) {
          this.set({ status }, s.workers.filter((w) => w.status === status).length);
        }
      },
    });
    new client.Gauge({
      name: "appproxy_workers_connected",
      help: "Workers with a live stream on any instance.",
      registers,
      async collect() {
        const s = await fleet();
        if (!s) return leaveOut(this);
        this.set(s.workers.filter((w) => w.connected).length);
      },
    });
    new client.Gauge({
      name: "appproxy_stranded_routes",
      help: "Routes on lost workers that no eligible worker can take yet.",
      registers,
      async collect() {
        const s = await fleet();
        if (!s) return leaveOut(this);
        this.set(s.stranded);
      },
    });
  }
}
