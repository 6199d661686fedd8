import pg from "pg";
import type { Database } from "./database.js";
import type { Logger } from "../logger.js";

export type NotificationHandler = (channel: string, payload: string) => void;

const MAX_BACKOFF_MS = 5000;

/**
 * LISTENs on channels for as long as it runs. On PostgreSQL it holds its own client (LISTEN
 * cannot share a pooled connection) and reconnects with backoff when that connection drops;
 * `onReconnect` then tells the caller that notifications may have been missed. On the embedded
 * database it uses PGlite's own listen().
 */
export class NotificationListener {
  private client: pg.Client | undefined;
  private stopped = false;
  private unlisten: Array<() => Promise<void>> = [];
  private retryTimer: NodeJS.Timeout | undefined;
  private backoffMs = 100;

  constructor(
    private readonly database: Database,
    private readonly channels: string[],
    private readonly onNotify: NotificationHandler,
    private readonly onReconnect: () => void,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    if (this.database.pglite) {
      for (const channel of this.channels) {
        this.unlisten.push(
          await this.database.pglite.listen(channel, (payload) => this.onNotify(channel, payload)),
        );
      }
      return;
    }
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.database.url,
      application_name: "appproxy-coordinator-listen",
      keepAlive: true,
    });
    client.on("notification", (msg) => this.onNotify(msg.channel, msg.payload ?? ""));
    client.on("error", (error) => {
      this.logger.warn("notification connection failed", { error: error.message });
    });
    client.on("end", () => {
      if (this.client === client) this.client = undefined;
      if (!this.stopped) this.scheduleReconnect();
    });
    try {
      await client.connect();
      for (const channel of this.channels) await client.query(`LISTEN ${channel}`);
      this.client = client;
      this.backoffMs = 100;
    } catch (error) {
      this.logger.warn("cannot listen for notifications", { error: String(error) });
      client.removeAllListeners("end");
      await client.end().catch(() => undefined);
      if (!this.stopped) this.scheduleReconnect();
      return;
    }
    if (this.stopped) await client.end().catch(() => undefined);
  }

  private scheduleReconnect(): void {
    if (this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.connect().then(() => {
        if (this.client) this.onReconnect();
      });
    }, delay);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    for (const u of this.unlisten) await u().catch(() => undefined);
    this.unlisten = [];
    const client = this.client;
    this.client = undefined;
    if (client) await client.end().catch(() => undefined);
  }
}
