import type { TableMismatch } from "./routing-table.js";

/** The coordinator sent a frame this client cannot read (not JSON, no type, or a wrong shape). */
export class StreamFrameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "StreamFrameError";
  }
}

/** A snapshot or diff did not fit the table; the table was kept and a resync or nack was sent. */
export class TableMismatchError extends Error {
  constructor(readonly mismatch: TableMismatch) {
    super(describeMismatch(mismatch));
    this.name = "TableMismatchError";
  }
}

/** The coordinator reported an `error` frame; it closes the stream right after. */
export class CoordinatorStreamError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(`coordinator error ${code}: ${message}`);
    this.name = "CoordinatorStreamError";
  }
}

/** The stream upgrade was answered with an HTTP status instead of a WebSocket. */
export class StreamRefusedError extends Error {
  constructor(readonly status: number) {
    super(`stream refused with HTTP ${status}`);
    this.name = "StreamRefusedError";
  }
}

export function describeMismatch(mismatch: TableMismatch): string {
  switch (mismatch.kind) {
    case "from":
      return `diff starts at version ${mismatch.from} but the table is at ${mismatch.tableVersion}`;
    case "backwards":
      return `diff goes backwards from ${mismatch.from} to ${mismatch.to}`;
    case "digest":
      return `digest mismatch at version ${mismatch.version}: coordinator ${mismatch.expected}, worker ${mismatch.actual}`;
  }
}

/** The worker applied a change but refused to serve some of its routes; it nacked the version. */
export class RoutesRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "RoutesRefusedError";
  }
}
