import type { Knex } from "knex";

type Db = Knex | Knex.Transaction;

/** A row of `backendai_conf_tokens`: what `POST /v2/conf` was told about a session's kernel. */
export interface ConfTokenRow {
  token: string;
  session_id: string;
  kernel_host: string;
  kernel_port: number;
  login_session_token: string | null;
  user_uuid: string | null;
  project_id: string | null;
  access_key: string;
  domain_name: string | null;
  created_at: Date;
}

export async function insertConfToken(db: Db, row: ConfTokenRow): Promise<void> {
  await db("backendai_conf_tokens").insert(row);
}

export async function findConfToken(db: Db, token: string): Promise<ConfTokenRow | undefined> {
  return (await db("backendai_conf_tokens").where({ token }).first()) as ConfTokenRow | undefined;
}

/** A row of `backendai_replicas`: one Manager route (replica) of an inference endpoint. */
export interface ReplicaRow {
  endpoint_route_id: string;
  replica_id: string;
  session_id: string;
  host: string;
  port: number;
  weight: number;
  position: number;
}

export async function findReplicas(db: Db, endpointRouteIds: string[]): Promise<ReplicaRow[]> {
  if (endpointRouteIds.length === 0) return [];
  const rows = (await db("backendai_replicas")
    .whereIn("endpoint_route_id", endpointRouteIds)
    .orderBy([{ column: "endpoint_route_id" }, { column: "position" }])) as ReplicaRow[];
  return rows.map((r) => ({ ...r, position: Number(r.position) }));
}

/** Makes `replicas` the whole replica list of the endpoint. */
export async function replaceReplicas(
  tx: Knex.Transaction,
  endpointRouteId: string,
  replicas: ReplicaRow[],
): Promise<void> {
  await tx("backendai_replicas").where({ endpoint_route_id: endpointRouteId }).delete();
  if (replicas.length > 0) await tx("backendai_replicas").insert(replicas);
}
