import querystring from "node:querystring";
import { badRequest } from "../errors.js";

/**
 * Express's "simple" query parser, strict about percent-encoding: `%zz` or a broken UTF-8
 * sequence is a 400, not a value silently decoded into something the client did not send.
 * (node:querystring falls back to a lenient decoding on its own, so each part is checked first.)
 * Express calls it when a handler first reads `req.query`, so the error reaches the error handler.
 */
export function parseQuery(text: string | null | undefined): querystring.ParsedUrlQuery {
  if (!text) return {};
  if (text.includes("%")) {
    for (const part of text.split(/[&=]/)) {
      try {
        decodeURIComponent(part);
      } catch {
        throw badRequest("The query string is not valid percent-encoded UTF-8.");
      }
    }
  }
  return querystring.parse(text);
}
