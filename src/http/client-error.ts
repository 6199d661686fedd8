import { randomUUID } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { Socket } from "node:net";
import {
  badRequest,
  headersTooLarge,
  payloadTooLarge,
  requestTimeout,
  type AppError,
} from "../errors.js";
import type { Logger } from "../logger.js";
import { problemBody } from "./problem.js";

/** What Node's HTTP parser and server report on a request they give up on (`clientError`). */
interface ParserError extends Error {
  code?: string;
  /** llhttp's own words for what it refused, e.g. "Invalid method encountered". */
  reason?: string;
}

function problemFor(error: ParserError): AppError {
  switch (error.code) {
    case "HPE_HEADER_OVERFLOW":
      return headersTooLarge("The request's header section is larger than this server takes.");
    case "HPE_CHUNK_EXTENSIONS_OVERFLOW":
      return payloadTooLarge("The body's chunk extensions are larger than this server takes.");
    case "ERR_HTTP_REQUEST_TIMEOUT":
      return requestTimeout("The request did not arrive in full in time.");
    default: {
      const reason = typeof error.reason === "string" ? ` (${error.reason})` : "";
      return badRequest(`The request is not valid HTTP/1.1${reason}.`);
    }
  }
}

/**
 * Answers requests Node's parser refuses (an unknown method such as `FOO /routes`, a broken
 * header, a request line that never ends) with problem+json and an X-Request-Id, as every
 * other error is answered, where Node alone would write a bare `400` without either. Express
 * never sees such a request, so the answer is written on the socket here.
 */
export function answerClientError(logger: Logger): (error: ParserError, socket: Socket) => void {
  return (error, socket) => {
    // Node's own rule: say nothing on a socket the peer reset, or where an answer to an earlier
    // request of the connection has begun (a second one would corrupt it).
    const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    if (error.code === "ECONNRESET" || !socket.writable || inFlight?.headersSent) {
      socket.destroy();
      return;
    }
    const problem = problemFor(error);
    const requestId = randomUUID();
    const body = problemBody(problem);
    logger.info("request refused by the HTTP parser", {
      request_id: requestId,
      status: problem.status,
      code: error.code,
    });
    socket.end(
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status]}\r\n` +
        "Content-Type: application/problem+json\r\n" +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        `X-Request-Id: ${requestId}\r\n` +
        "Connection: close\r\n\r\n" +
        body,
      () => socket.destroy(),
    );
  };
}
