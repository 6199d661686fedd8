import type { Knex } from "knex";
import { readHead } from "../sync/changelog.js";
import type { WorkerStatus } from "../workers/model.js";

export interface WorkerSummary {
  id: string;
  name: string;
  status: WorkerStatus;
  connected: boolean;
  applied_version: number;
  lag: number;
  route_count: number;
  last_seen_at: string | null;
  instance_id: string | null;
  last_nack: unknown;
}

export interface FleetSummary {
  version: number;
  changelogMinVersion: number;
  routes: number;
  stranded: number;
  workers: WorkerSummary[];
}

/**
 * The whole fleet in two queries (the head, and one row per worker with its counts), whatever
 * the number of routes: route counts are kept on the workers' rows.
 */
export async function readFleetSummary(knex: Knex): Promise<FleetSummary> {
  const head = await readHead(knex);
  const rows = (await knex("workers")
    .orderBy("name")
    .select(
      "id",
      "name",
      "status",
      "connected_instance",
      "applied_version",
      "route_count",
      "last_seen_at",
      "last_nack",
    )) as Array<{
    id: string;
    name: string;
    status: WorkerStatus;
    connected_instance: string | null;
    applied_version: number;
    route_count: number;
    last_seen_at: Date | null;
    last_nack: unknown;
  }>;
  let routes = 0;
  let stranded = 0;
  const workers = rows.map((r) => {
    routes += r.route_count;
    if (r.status === "lost") stranded += r.route_count;
    const applied = Number(r.applied_version);
    return {
      id: r.id,
      name: r.name,
      status: r.status,
      connected: r.connected_instance !== null,
      applied_version: applied,
      lag: Math.max(0, head.version - applied),
      route_count: r.route_count,
      last_seen_at: r.last_seen_at ? new Date(r.last_seen_at).toISOString() : null,
      instance_id: r.connected_instance,
      last_nack: r.last_nack,
    };
  });
  return {
    version: head.version,
    changelogMinVersion: head.floor + 1,
    routes,
    stranded,
    workers,
  };
}
