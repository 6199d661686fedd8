/**
 * Where the client finds the coordinator. The coordinator URL may carry a path prefix (a
 * coordinator behind a reverse proxy at `https://ops.example.com/appproxy/`), and every endpoint
 * is resolved under it.
 */

/** Hosts a coordinator may put in `stream_url` when it only knows the address it listens on. */
const UNROUTABLE_HOSTS = new Set(["", "0.0.0.0", "[::]", "::", "[::0]"]);

function coordinatorBase(coordinatorUrl: string): URL {
  const base = new URL(coordinatorUrl);
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`coordinator URL must be http(s): ${coordinatorUrl}`);
  }
  base.pathname = base.pathname.replace(/\/*$/, "/");
  base.search = "";
  base.hash = "";
  return base;
}

export function registerUrl(coordinatorUrl: string): URL {
  return new URL("workers/register", coordinatorBase(coordinatorUrl));
}

/**
 * The URL of a worker's stream, resuming after `since`. The coordinator's `stream_url` is used
 * when it is an absolute ws(s) or http(s) URL with a routable host, and not plain text where the
 * coordinator URL is https; otherwise (relative, bound to 0.0.0.0 / ::, or a downgrade from TLS,
 * as a proxy that terminates TLS without `X-Forwarded-Proto` makes it) the URL is built from the
 * coordinator URL the worker was configured with, which is known to reach the coordinator:
 * `ws(s)://<host>[/prefix]/workers/<id>/stream`. The worker's token never travels in plain text
 * because of what the coordinator answered.
 */
export function streamUrl(
  advertised: string | undefined,
  coordinatorUrl: string,
  workerId: string,
  since: number,
): URL {
  const secure = coordinatorBase(coordinatorUrl).protocol === "https:";
  const url = usableStreamUrl(advertised, secure) ?? builtStreamUrl(coordinatorUrl, workerId);
  url.searchParams.set("since", String(since));
  return url;
}

function usableStreamUrl(advertised: string | undefined, secure: boolean): URL | undefined {
  if (advertised === undefined || !URL.canParse(advertised)) return undefined;
  const url = new URL(advertised);
  if (UNROUTABLE_HOSTS.has(url.hostname)) return undefined;
  if (url.protocol === "http:") url.protocol = "ws:";
  else if (url.protocol === "https:") url.protocol = "wss:";
  if (url.protocol === "wss:") return url;
  return url.protocol === "ws:" && !secure ? url : undefined;
}

function builtStreamUrl(coordinatorUrl: string, workerId: string): URL {
  const base = coordinatorBase(coordinatorUrl);
  const url = new URL(`workers/${encodeURIComponent(workerId)}/stream`, base);
  url.protocol = base.protocol === "https:" ? "wss:" : "ws:";
  return url;
}
