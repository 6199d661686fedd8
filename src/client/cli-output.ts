import type { Route } from "./route.js";
import type { TableChange } from "./routing-table.js";
import type {
  ConnectedEvent,
  DisconnectedEvent,
  RegisteredEvent,
  StoppedEvent,
  SyncedEvent,
} from "./worker-client.js";

/** One line per route a change touched: `v42 +<id> app=jupyter port=10201 url=…`, `v43 -<id>`. */
export function changeLines(change: TableChange): string[] {
  return [
    ...change.deletes.map((id) => `v${change.to} -${id}`),
    ...change.upserts.map((route) => `v${change.to} +${route.id} ${routeSummary(route)}`),
  ];
}

function routeSummary(route: Route): string {
  const parts = [`app=${route.app ?? "-"}`, `protocol=${route.protocol}`];
  if (route.port !== null) parts.push(`port=${route.port}`);
  if (route.subdomain !== null) parts.push(`subdomain=${route.subdomain}`);
  parts.push(`url=${route.url}`);
  parts.push(`upstreams=${route.upstreams.map((u) => `${u.host}:${u.port}`).join(",")}`);
  return parts.join(" ");
}

export function registeredLine(event: RegisteredEvent): string {
  const previous =
    event.previousWorkerId === null ? "" : ` (was ${event.previousWorkerId}, removed)`;
  return `registered worker=${event.workerId} name=${event.name} v${event.version} routes=${event.routes}${previous}`;
}

export function connectedLine(event: ConnectedEvent): string {
  return `connected worker=${event.workerId} coordinator=${event.instanceId}`;
}

export function syncedLine(event: SyncedEvent): string {
  return `v${event.version} synced routes=${event.routes} digest=${event.digest.slice(0, 12)}`;
}

export function disconnectedLine(event: DisconnectedEvent): string {
  return `disconnected code=${event.code}${event.reason ? ` reason=${event.reason}` : ""}`;
}

export function stoppedLine(event: StoppedEvent): string {
  switch (event.cause) {
    case "stopped":
      return "stopped";
    case "replaced":
      return "stopped: another process took over this worker's stream (close code 4000)";
    case "registration_refused":
    case "failed":
      return `stopped: ${event.error?.message ?? event.cause}`;
  }
}
