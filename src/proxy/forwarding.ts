import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";

/** Headers that describe one connection, not the message (RFC 9110 §7.6.1), plus old aliases. */
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

export interface ForwardingContext {
  /** The address of the peer that connected to the worker. */
  peerAddress: string;
  /** Whether that peer is one of TRUSTED_PROXIES, whose X-Forwarded-* headers are believed. */
  peerTrusted: boolean;
  /** The scheme the client used to reach the worker. */
  proto: "http" | "https";
  /** The permit cookie to take out of `Cookie`, if any. */
  permitCookie?: string;
  /** Take `Authorization` out: it carried this route's access token. */
  stripAuthorization: boolean;
  /** For a protocol upgrade: the `Upgrade` value to keep, with `Connection: upgrade`. */
  upgrade?: string;
}

const NO_TOKENS: ReadonlySet<string> = new Set();

/** Names listed in Connection: hop-by-hop for this message only. */
function connectionTokens(value: string | string[] | undefined): ReadonlySet<string> {
  if (value === undefined) return NO_TOKENS;
  const tokens = new Set<string>();
  const text = Array.isArray(value) ? value.join(",") : (value ?? "");
  for (const token of text.split(",")) {
    const name = token.trim().toLowerCase();
    if (name !== "") tokens.add(name);
  }
  return tokens;
}

/**
 * The headers a request carries upstream: hop-by-hop headers (and those Connection names)
 * removed, the permit cookie and a bearer access token taken out, X-Forwarded-For/-Proto/-Host
 * set. A peer that is not a trusted proxy cannot make the upstream believe anything: its own
 * X-Forwarded-* headers are replaced, not extended.
 */
export function upstreamRequestHeaders(
  incoming: IncomingHttpHeaders,
  context: ForwardingContext,
): OutgoingHttpHeaders {
  const listed = connectionTokens(incoming.connection);
  const outgoing: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    outgoing[name] = value;
  }
  if (context.permitCookie !== undefined && typeof incoming.cookie === "string") {
    const rest = withoutCookie(incoming.cookie, context.permitCookie);
    if (rest === undefined) delete outgoing.cookie;
    else outgoing.cookie = rest;
  }
  if (context.stripAuthorization) delete outgoing.authorization;

  const forwardedFor = context.peerTrusted ? joined(incoming["x-forwarded-for"]) : undefined;
  outgoing["x-forwarded-for"] =
    forwardedFor === undefined ? context.peerAddress : `${forwardedFor}, ${context.peerAddress}`;
  const proto = context.peerTrusted ? joined(incoming["x-forwarded-proto"]) : undefined;
  outgoing["x-forwarded-proto"] = proto ?? context.proto;
  const host = context.peerTrusted ? joined(incoming["x-forwarded-host"]) : undefined;
  const ownHost = incoming.host;
  if (host !== undefined) outgoing["x-forwarded-host"] = host;
  else if (ownHost !== undefined) outgoing["x-forwarded-host"] = ownHost;
  else delete outgoing["x-forwarded-host"];

  if (context.upgrade !== undefined) {
    outgoing.connection = "upgrade";
    outgoing.upgrade = context.upgrade;
  }
  return outgoing;
}

/** The upstream's response headers without its hop-by-hop headers (Node sets the worker's own). */
export function downstreamResponseHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const listed = connectionTokens(incoming.connection);
  const outgoing: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(incoming)) {
    if (value === undefined || HOP_BY_HOP.has(name) || listed.has(name)) continue;
    outgoing[name] = value;
  }
  return outgoing;
}

/**
 * A Cookie header without the cookie `name`; undefined when nothing else is left. The other
 * cookies keep their exact bytes (decoding and re-encoding them could change what the app sees).
 */
export function withoutCookie(header: string, name: string): string | undefined {
  const kept = header
    .split(";")
    .filter((pair) => {
      const separator = pair.indexOf("=");
      const key = (separator === -1 ? pair : pair.slice(0, separator)).trim();
      return key !== name && pair.trim() !== "";
    })
    .map((pair) => pair.trim());
  return kept.length === 0 ? undefined : kept.join("; ");
}

function joined(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = Array.isArray(value) ? value.join(", ") : value;
  return text.trim() === "" ? undefined : text;
}

/** A raw HTTP/1.1 request head for an upgrade, written to the upstream socket as is. */
export function requestHead(method: string, target: string, headers: OutgoingHttpHeaders): string {
  let head = `${method} ${target} HTTP/1.1\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined) continue;
    for (const item of Array.isArray(value) ? value : [value])
      head += `${name}: ${String(item)}\r\n`;
  }
  return `${head}\r\n`;
}
