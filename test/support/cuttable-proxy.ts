import net from "node:net";

/**
 * A TCP proxy in front of PostgreSQL that can be cut: `cut()` destroys every connection through
 * it and refuses new ones (accepts and destroys them at once) until `restore()`.
 */
export class CuttableProxy {
  readonly #sockets = new Set<net.Socket>();
  #cut = false;

  private constructor(
    readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(target: { host: string; port: number }): Promise<CuttableProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolve());
    });
    const proxy = new CuttableProxy(server, (server.address() as net.AddressInfo).port);
    server.on("connection", (client) => proxy.#pipe(client, target));
    return proxy;
  }

  #pipe(client: net.Socket, target: { host: string; port: number }): void {
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = net.connect(target.port, target.host);
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
      socket.on("close", () => {
        this.#sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  }

  cut(): void {
    this.#cut = true;
    for (const socket of this.#sockets) socket.destroy();
  }

  restore(): void {
    this.#cut = false;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
