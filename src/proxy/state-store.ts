import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import path from "node:path";
import type { ResumeState } from "../client/worker-client.js";
import { parseAccessKeySet } from "../client/access-keys.js";
import { parseRoute } from "../client/route.js";
import {
  expectArray,
  expectInteger,
  expectNonEmptyString,
  expectObject,
  expectString,
} from "../client/shape.js";

/** The file in DATA_DIR holding the worker's identity and last applied table. */
export const STATE_FILE = "worker-state.json";

interface StoredState extends ResumeState {
  /** Whom the state belongs to: a state kept for another name or coordinator is not used. */
  name: string;
  coordinatorUrl: string;
}

/**
 * Keeps what a restarted worker needs to serve at once and resume its stream with `since`: its
 * worker token and the table it last applied. Writes are whole-or-nothing (temporary file, fsync,
 * rename) and coalesced: while one write runs, only the newest state waits for the next.
 */
export class WorkerStateStore {
  readonly #file: string;
  #writing: Promise<void> | undefined;
  #pending: StoredState | undefined;

  constructor(
    readonly dataDir: string,
    private readonly owner: { name: string; coordinatorUrl: string },
    private readonly onError: (error: Error) => void,
  ) {
    this.#file = path.join(dataDir, STATE_FILE);
  }

  /** The kept state, or undefined when there is none, it is unreadable, or not this worker's. */
  async load(): Promise<ResumeState | undefined> {
    let text: string;
    try {
      text = await readFile(this.#file, "utf8");
    } catch {
      return undefined;
    }
    try {
      const object = expectObject(JSON.parse(text), "");
      if (
        expectString(object.name, "name") !== this.owner.name ||
        expectString(object.coordinatorUrl, "coordinatorUrl") !== this.owner.coordinatorUrl
      ) {
        return undefined;
      }
      return {
        workerId: expectNonEmptyString(object.workerId, "workerId"),
        token: expectNonEmptyString(object.token, "token"),
        streamUrl: expectString(object.streamUrl, "streamUrl"),
        version: expectInteger(object.version, "version"),
        routes: expectArray(object.routes, "routes", parseRoute),
        ...(object.accessKeys === undefined
          ? {}
          : { accessKeys: parseAccessKeySet(object.accessKeys, "accessKeys") }),
      };
    } catch (error) {
      this.onError(
        new Error(`${this.#file} is not a worker state this worker can use: ${String(error)}`),
      );
      return undefined;
    }
  }

  /** Keeps `state`; resolves once it (or a newer state) is on disk. */
  save(state: ResumeState): Promise<void> {
    this.#pending = { ...state, ...this.owner };
    this.#writing ??= this.#drain();
    return this.#writing;
  }

  async #drain(): Promise<void> {
    try {
      while (this.#pending !== undefined) {
        const state = this.#pending;
        this.#pending = undefined;
        try {
          await this.#write(state);
        } catch (error) {
          this.onError(error instanceof Error ? error : new Error(String(error)));
        }
      }
    } finally {
      this.#writing = undefined;
    }
  }

  async #write(state: StoredState): Promise<void> {
    await mkdir(this.dataDir, { recursive: true, mode: 0o700 });
    const temporary = `${this.#file}.${process.pid}.tmp`;
    const handle = await open(temporary, "w", 0o600);
    try {
      await handle.writeFile(JSON.stringify(state));
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await rename(temporary, this.#file);
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
  }
}
