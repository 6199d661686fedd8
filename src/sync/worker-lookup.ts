/** Ids asked about in one statement at most. */
const BATCH = 500;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface Asked {
  id: string;
  resolve: (seq: number | undefined) => void;
  reject: (error: unknown) => void;
}

/** Numbers streams of the given workers, one each, undefined for a worker that does not exist. */
export type NumberStreams = (ids: string[]) => Promise<Array<number | undefined>>;

/**
 * Admits stream upgrades, which must refuse an unknown worker with 404 before upgrading, and
 * numbers each admitted stream (see numberStreams). Questions asked while a read is under way,
 * or in the same turn of the event loop, are answered together by the next read: a fleet
 * reconnecting at once (a restarted coordinator, a network blip) costs a few statements instead
 * of one per worker.
 */
export class WorkerLookup {
  private waiting: Asked[] = [];
  private reading = false;

  constructor(private readonly numberStreams: NumberStreams) {}

  /** The new stream's number, or undefined when the worker does not exist. */
  admit(id: string): Promise<number | undefined> {
    // Not an id any worker can have; asking the database would fail the whole batch.
    if (!UUID.test(id)) return Promise.resolve(undefined);
    return new Promise((resolve, reject) => {
      this.waiting.push({ id, resolve, reject });
      if (!this.reading && this.waiting.length === 1) setImmediate(() => void this.read());
    });
  }

  private async read(): Promise<void> {
    if (this.reading) return;
    this.reading = true;
    try {
      while (this.waiting.length > 0) {
        const asked = this.waiting.splice(0, BATCH);
        try {
          const numbers = await this.numberStreams(asked.map((a) => a.id));
          asked.forEach((a, i) => a.resolve(numbers[i]));
        } catch (error) {
          for (const a of asked) a.reject(error);
        }
      }
    } finally {
      this.reading = false;
    }
  }
}
