import { createHash, randomBytes } from "node:crypto";
import { EventEmitter, once } from "node:events";
import net from "node:net";
import WebSocket from "ws";
import type { Api } from "../support/harness.js";

/** A frame as the coordinator sent it, parsed; `type` is all a frame is sure to carry. */
export interface Frame {
  type: string;
  [field: string]: unknown;
}

export interface DigestEntry {
  id: string;
  version: number;
}

/**
 * The stream's digest computed here from its definition in docs/api.md, independently of the code
 * under test: SHA-256 (lowercase hex) of "<id> <version>\n" per route, sorted by id in byte order.
 */
export function expectedDigest(routes: Iterable<DigestEntry>): string {
  const sorted = [...routes].sort((a, b) => Buffer.compare(Buffer.from(a.id), Buffer.from(b.id)));
  const hash = createHash("sha256");
  for (const r of sorted) hash.update(`${r.id} ${r.version}\n`, "utf8");
  return hash.digest("hex");
}

export const EMPTY_DIGEST = createHash("sha256").update("").digest("hex");

export function streamUrl(baseUrl: string, workerId: string, since?: number): string {
  const url = new URL(`/workers/${workerId}/stream`, baseUrl.replace(/^http/, "ws"));
  if (since !== undefined) url.searchParams.set("since", String(since));
  return url.toString();
}

/** Every route GET /routes lists with `filter` (e.g. "worker_id=…"), all pages. */
export async function listRoutes<T extends DigestEntry>(api: Api, filter = ""): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `/routes?${filter ? `${filter}&` : ""}limit=1000${cursor ? `&cursor=${cursor}` : ""}`;
    const page = await api.get<{ items: T[]; next_cursor: string | null }>(query);
    if (page.status !== 200) throw new Error(`GET ${query}: ${page.status}`);
    items.push(...page.body.items);
    cursor = page.body.next_cursor;
  } while (cursor);
  return items;
}

/** Every route the API says a worker holds. */
export function routesOfWorker<T extends DigestEntry>(api: Api, workerId: string): Promise<T[]> {
  return listRoutes<T>(api, `worker_id=${workerId}`);
}

/** The HTTP status that refused a stream upgrade; rejects if the upgrade was accepted. */
export function refusedStatus(url: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    ws.on("unexpected-response", (_request, response) => {
      resolve(response.statusCode ?? 0);
      response.resume();
      ws.terminate();
    });
    ws.on("open", () => {
      ws.terminate();
      reject(new Error(`upgrade to ${url} was accepted`));
    });
    // terminate() during the handshake reports an error; the status was already resolved.
    ws.on("error", (error) => reject(error));
  });
}

/**
 * A worker's stream through a plain `ws` client, not the library: every text frame the
 * coordinator sends is kept in order, and the test reads them one by one.
 */
export class RawStream {
  readonly frames: Frame[] = [];
  private read = 0;
  private readonly signal = new EventEmitter();
  closeInfo: { code: number; reason: string } | undefined;
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(readonly socket: WebSocket) {
    socket.on("message", (data, isBinary) => {
      const text = isBinary ? "" : String(data);
      let frame: Frame;
      try {
        frame = JSON.parse(text) as Frame;
      } catch {
        frame = { type: "(not json)", text };
      }
      this.frames.push(frame);
      this.signal.emit("change");
    });
    this.closed = new Promise((resolve) => {
      socket.on("close", (code, reason) => {
        this.closeInfo = { code, reason: reason.toString("utf8") };
        this.signal.emit("change");
        resolve(this.closeInfo);
      });
    });
    socket.on("error", () => undefined);
  }

  static async open(
    baseUrl: string,
    workerId: string,
    token: string,
    since?: number,
  ): Promise<RawStream> {
    const socket = new WebSocket(streamUrl(baseUrl, workerId, since), {
      headers: { authorization: `Bearer ${token}` },
    });
    const stream = new RawStream(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("unexpected-response", (_req, res) =>
        reject(new Error(`stream refused: ${res.statusCode}`)),
      );
      socket.once("error", reject);
    });
    return stream;
  }

  /** Frames received and not yet read by next(). */
  get unread(): number {
    return this.frames.length - this.read;
  }

  /** The next frame in order; throws when the stream closes or nothing comes in time. */
  async next(timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    while (this.read >= this.frames.length) {
      if (this.closeInfo) {
        throw new Error(`stream closed (${this.closeInfo.code}) while waiting for a frame`);
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no frame within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.signal.off("change", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.signal.on("change", done);
      });
    }
    return this.frames[this.read++]!;
  }

  /** The next frame, which must be of `type`. */
  async expect(type: string, timeoutMs = 5000): Promise<Frame> {
    const frame = await this.next(timeoutMs);
    if (frame.type !== type) {
      throw new Error(`expected a ${type} frame, got ${JSON.stringify(frame).slice(0, 300)}`);
    }
    return frame;
  }

  send(frame: unknown): void {
    this.socket.send(typeof frame === "string" ? frame : JSON.stringify(frame));
  }

  /** Waits for the coordinator to close the stream. */
  async closedWithin(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`stream not closed within ${timeoutMs} ms`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes from the worker's side (idempotent); cuts the socket if the close is not answered. */
  async close(): Promise<void> {
    if (this.closeInfo) return;
    if (this.socket.readyState === WebSocket.OPEN) this.socket.close(1000, "test done");
    else this.socket.terminate();
    const cut = setTimeout(() => this.socket.terminate(), 2000);
    await this.closed;
    clearTimeout(cut);
  }
}

/**
 * A stream spoken by hand over a plain TCP socket: the upgrade is written as text and frames are
 * parsed here. Unlike a `ws` client it can stop reading (pause) while the coordinator keeps
 * sending, which is what a stuck worker looks like from the coordinator's side.
 */
export class WireStream {
  readonly frames: Frame[] = [];
  /** Bytes of text payload received. */
  textBytes = 0;
  closeCode: number | undefined;
  ended = false;
  private handshake: { status: number } | undefined;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private fragments: Buffer[] = [];
  private readonly signal = new EventEmitter();

  private constructor(readonly socket: net.Socket) {
    socket.on("data", (chunk: Buffer) => {
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      this.parse();
      this.signal.emit("change");
    });
    socket.on("end", () => {
      this.ended = true;
      this.signal.emit("change");
    });
    socket.on("close", () => {
      this.ended = true;
      this.signal.emit("change");
    });
    socket.on("error", () => undefined);
  }

  static async open(baseUrl: string, workerId: string, token: string): Promise<WireStream> {
    const url = new URL(baseUrl);
    const socket = net.connect(Number(url.port), url.hostname);
    await once(socket, "connect");
    const stream = new WireStream(socket);
    socket.write(
      `GET /workers/${workerId}/stream HTTP/1.1\r\n` +
        `Host: ${url.host}\r\n` +
        "Upgrade: websocket\r\n" +
        "Connection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n` +
        "Sec-WebSocket-Version: 13\r\n" +
        `Authorization: Bearer ${token}\r\n\r\n`,
    );
    await stream.until(() => stream.handshake !== undefined, 5000, "the upgrade answer");
    if (stream.handshake!.status !== 101) {
      socket.destroy();
      throw new Error(`upgrade refused: ${stream.handshake!.status}`);
    }
    return stream;
  }

  /** Resolves once `condition` holds, re-checked on every byte received; rejects at the deadline. */
  async until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}`);
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.signal.off("change", done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.signal.on("change", done);
      });
    }
  }

  /** Sends a text frame (writing goes on while reading is paused). */
  sendText(text: string): void {
    this.socket.write(maskedFrame(0x1, Buffer.from(text, "utf8")));
  }

  /** Answers the coordinator's close frame, as every WebSocket peer does. */
  replyClose(code: number): void {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code);
    this.socket.write(maskedFrame(0x8, payload));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return head;
  }

  private peek(n: number): Buffer {
    if (this.chunks[0]!.length < n) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private parse(): void {
    if (!this.handshake) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [all];
      const end = all.indexOf("\r\n\r\n");
      if (end < 0) return;
      const head = this.take(end + 4).toString("latin1");
      this.handshake = { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0) };
    }
    for (;;) {
      if (this.buffered < 2) return;
      const first = this.peek(2);
      const fin = (first[0]! & 0x80) !== 0;
      const opcode = first[0]! & 0x0f;
      let length = first[1]! & 0x7f;
      let headerLength = 2;
      if (length === 126) {
        if (this.buffered < 4) return;
        length = this.peek(4).readUInt16BE(2);
        headerLength = 4;
      } else if (length === 127) {
        if (this.buffered < 10) return;
        length = Number(this.peek(10).readBigUInt64BE(2));
        headerLength = 10;
      }
      if (this.buffered < headerLength + length) return;
      const payload = Buffer.from(this.take(headerLength + length).subarray(headerLength));
      if (opcode === 0x8) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      } else if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) {
        this.fragments.push(payload);
        if (fin) {
          const message = Buffer.concat(this.fragments);
          this.fragments = [];
          this.textBytes += message.length;
          this.frames.push(JSON.parse(message.toString("utf8")) as Frame);
        }
      }
    }
  }
}

/** A client frame: clients must mask what they send (RFC 6455 5.3). Payloads here are small. */
function maskedFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}
