/**
 * The embedded database's own thread: PGlite runs PostgreSQL compiled to WebAssembly, and every
 * query runs to its end without yielding. Run on the coordinator's thread, one query held back
 * every ping, frame and request meanwhile (event-loop stalls of hundreds of ms at 200 creates/s).
 * Here it answers the messages of pglite-thread.ts one at a time, as PGlite would anyway.
 */
import { parentPort, workerData } from "node:worker_threads";
import { PGlite } from "@electric-sql/pglite";
import {
  portableError,
  type HostMessage,
  type HostRequest,
  type PGliteResult,
} from "./pglite-protocol.js";

const port = parentPort;
if (!port) throw new Error("pglite-host.ts runs as a worker thread");
const { dataDir } = workerData as { dataDir: string };

const post = (message: HostMessage) => port.postMessage(message);

/** Only what the other side reads: PGlite's result objects hold more than rows and fields. */
function portableResult(result: PGliteResult): PGliteResult {
  return {
    rows: result.rows,
    fields: result.fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID })),
    ...(result.affectedRows === undefined ? {} : { affectedRows: result.affectedRows }),
  };
}

async function serve(db: PGlite): Promise<void> {
  const unlisteners = new Map<number, () => Promise<void>>();

  async function answer(request: HostRequest): Promise<unknown> {
    switch (request.op) {
      case "query":
        return portableResult(
          (await db.query(request.sql, request.params, request.options)) as PGliteResult,
        );
      case "exec":
        return (await db.exec(request.sql)).map((r) => portableResult(r as PGliteResult));
      case "listen": {
        const { listener } = request;
        unlisteners.set(
          listener,
          await db.listen(request.channel, (payload) =>
            post({ kind: "notification", listener, payload }),
          ),
        );
        return null;
      }
      case "unlisten": {
        const unlisten = unlisteners.get(request.listener);
        unlisteners.delete(request.listener);
        await unlisten?.();
        return null;
      }
      case "close":
        if (!db.closed) await db.close();
        return null;
    }
  }

  port!.on("message", (request: HostRequest) => {
    answer(request).then(
      (result) => {
        post({ kind: "done", id: request.id, result });
        if (request.op === "close") port!.close();
      },
      (error: unknown) => post({ kind: "error", id: request.id, error: portableError(error) }),
    );
  });
}

try {
  const db = await PGlite.create(dataDir);
  await serve(db);
  post({ kind: "ready" });
} catch (error) {
  post({ kind: "failed", error: portableError(error) });
  port.close();
}
