import type http from "node:http";
import type { Duplex } from "node:stream";
import { STATUS_CODES } from "node:http";
import { AppError } from "../errors.js";

export const badGateway = (detail: string) =>
  new AppError(502, "bad_gateway", "Bad Gateway", detail);

function problemBody(error: AppError): string {
  return JSON.stringify({
    type: `urn:appproxy:problem:${error.code}`,
    title: error.title,
    status: error.status,
    detail: error.message,
  });
}

/** Answers a request the worker itself refuses, as RFC 9457 problem+json. */
export function writeProblem(res: http.ServerResponse, error: AppError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = problemBody(error);
  res.writeHead(error.status, {
    ...(error.extra.headers ?? {}),
    "content-type": "application/problem+json",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}

/** The same answer on a socket whose request asked for an upgrade; the socket is then closed. */
export function writeRawProblem(socket: Duplex, error: AppError): void {
  const body = problemBody(error);
  const headers = Object.entries(error.extra.headers ?? {})
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join("");
  socket.end(
    `HTTP/1.1 ${error.status} ${STATUS_CODES[error.status] ?? ""}\r\n${headers}` +
      `content-type: application/problem+json\r\ncontent-length: ${Buffer.byteLength(body)}\r\n` +
      `connection: close\r\n\r\n${body}`,
  );
}
