/**
 * The proxy worker's control thread: registers, holds the coordinator's stream through the client
 * library, and keeps the worker's state in DATA_DIR. Reading and checking frames, the table's
 * digest and writing the kept table all happen here, off the thread that serves traffic. Each
 * change is handed to the data plane slice by slice and acknowledged only once the data plane
 * has put it in force: the client library's `apply` hook waits for that, so an acknowledged
 * version is still a served one.
 */
import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import type { TableChange } from "../client/routing-table.js";
import { WorkerClient } from "../client/worker-client.js";
import {
  ROUTES_PER_SLICE,
  type ChangeAnswer,
  type ControlCommand,
  type ControlEvent,
  type ControlThreadData,
} from "./control-protocol.js";
import { WorkerStateStore } from "./state-store.js";

/** How long table changes are gathered before the worker's state is written to DATA_DIR. */
const SAVE_DELAY_MS = 200;

if (parentPort === null) throw new Error("control-thread.ts runs as a worker thread");
const port = parentPort;
const data = workerData as ControlThreadData;
const taken = new Int32Array(data.taken);

const tell = (event: ControlEvent): void => port.postMessage(event);

/** Hands `event` over and waits until the data plane has taken it in. */
function handOver(event: ControlEvent): void {
  const before = Atomics.load(taken, 0);
  tell(event);
  while (Atomics.load(taken, 0) === before) Atomics.wait(taken, 0, before, 1000);
}

/** Puts `change` in force on the data plane; the nack's text when it refused routes of it. */
function applyOnDataPlane(change: TableChange): string | undefined {
  for (let at = 0; at < change.upserts.length; at += ROUTES_PER_SLICE) {
    handOver({ type: "upserts", routes: change.upserts.slice(at, at + ROUTES_PER_SLICE) });
  }
  handOver({ type: "commit", version: change.to, deletes: [...change.deletes] });
  const answer = receiveMessageOnPort(data.answers)?.message as ChangeAnswer | undefined;
  return answer?.refusal;
}

const store = new WorkerStateStore(data.dataDir, data.owner, (error) =>
  tell({ type: "warning", message: `worker state not kept: ${error.message}` }),
);
const resume = await store.load();
if (resume !== undefined) {
  applyOnDataPlane({ from: 0, to: resume.version, upserts: [...resume.routes], deletes: [] });
}
tell({
  type: "kept",
  state:
    resume === undefined
      ? null
      : {
          workerId: resume.workerId,
          version: resume.version,
          ...(resume.accessKeys === undefined ? {} : { accessKeys: resume.accessKeys }),
        },
});

const client = new WorkerClient({
  coordinatorUrl: data.coordinatorUrl,
  registrationToken: data.registrationToken,
  registration: data.registration,
  ...data.client,
  ...(resume === undefined ? {} : { resume }),
  apply: (change) => {
    const refusal = applyOnDataPlane(change);
    scheduleSave();
    return refusal;
  },
});

let saveTimer: NodeJS.Timeout | undefined;
function scheduleSave(): void {
  if (saveTimer !== undefined) return;
  saveTimer = setTimeout(() => {
    saveTimer = undefined;
    const state = client.resumeState;
    if (state !== undefined) void store.save(state);
  }, SAVE_DELAY_MS);
}

// A registration's table is applied right after its event: tell it once that is done.
client.on("registered", (event) =>
  setImmediate(() =>
    tell({
      type: "registered",
      workerId: event.workerId,
      version: event.version,
      routes: event.routes,
    }),
  ),
);
client.on("connected", (event) =>
  tell({ type: "connected", workerId: event.workerId, instanceId: event.instanceId }),
);
client.on("disconnected", (event) =>
  tell({ type: "disconnected", code: event.code, reason: event.reason }),
);
client.on("accessKeys", (keys) => {
  tell({ type: "accessKeys", keys });
  scheduleSave();
});
client.on("error", (error) => tell({ type: "warning", message: error.message }));
client.on("stopped", (event) =>
  tell({
    type: "stopped",
    cause: event.cause,
    ...(event.error === undefined ? {} : { error: event.error.message }),
  }),
);

let closing: Promise<void> | undefined;
async function close(): Promise<void> {
  clearTimeout(saveTimer);
  const state = client.resumeState;
  await client.stop();
  const last = client.resumeState ?? state;
  if (last !== undefined) await store.save(last);
  tell({ type: "closed" });
  port.close();
  data.answers.close();
}

port.on("message", (command: ControlCommand) => {
  switch (command.type) {
    case "activity":
      client.reportActivity(command.routeId, new Date(command.at));
      return;
    case "stop":
      closing ??= close();
      return;
  }
});

client.start().catch(() => {
  // `stopped` has told the data plane already; the rejection only repeats it.
});
