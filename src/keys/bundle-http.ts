// HTTP for publication targets and sources: node's fetch, redirects only within the origin asked
// for, bodies read only up to their limit, URLs shown without credentials.
import { PublicationError } from './errors.ts';

/** A URL for messages: without user name or password. */
export function shown(url: URL): string {
  const copy = new URL(url.href);
  copy.username = '';
  copy.password = '';
  return copy.href;
}

export function httpUrl(base: string): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new PublicationError('target', 'not a URL');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new PublicationError('target', `${shown(url)}: only http and https URLs are supported`);
  if (!url.pathname.endsWith('/')) url.pathname += '/';
  return url;
}

/** Redirects a GET or HEAD follows, each within the first URL's origin (scheme, host and port). */
export const MAX_REDIRECTS = 5;
/** The largest index read: it lists bundle names (at most 138 bytes each), one a line. */
export const MAX_INDEX_BYTES = 1024 * 1024;

/**
 * One request. A redirect is followed only by GET and HEAD, at most MAX_REDIRECTS times, and
 * only within the origin asked for: one to another scheme or host is refused, so a source can
 * neither send us to a local file nor to a server the user did not name.
 */
export async function http(url: URL, init: RequestInit, allow404 = false): Promise<Response | null> {
  const method = init.method ?? 'GET';
  let at = url;
  for (let redirects = 0; ; redirects++) {
    let response: Response;
    try {
      response = await fetch(at, { ...init, redirect: 'manual' });
    } catch {
      throw new PublicationError('target', `${method} ${shown(at)}: cannot connect`);
    }
    const location = response.status >= 300 && response.status < 400 ? response.headers.get('location') : null;
    if (location === null) {
      if (allow404 && response.status === 404) return null;
      if (!response.ok) throw new PublicationError('target', `${method} ${shown(at)}: HTTP ${response.status}`);
      return response;
    }
    await response.body?.cancel();
    let next: URL;
    try {
      next = new URL(location, at);
    } catch {
      throw new PublicationError('target', `${method} ${shown(at)}: a redirect to something that is not a URL`);
    }
    if (next.origin !== url.origin)
      throw new PublicationError('target', `${method} ${shown(at)}: refused a redirect to another scheme or host (${shown(next)})`);
    if (method !== 'GET' && method !== 'HEAD')
      throw new PublicationError('target', `${method} ${shown(at)}: redirected to ${shown(next)}; name that URL instead`);
    if (redirects >= MAX_REDIRECTS) throw new PublicationError('target', `${method} ${shown(url)}: more than ${MAX_REDIRECTS} redirects`);
    at = next;
  }
}

/** A response's body, read only up to `limit` bytes: beyond it (declared or sent) it is refused. */
export async function bodyWithin(response: Response, limit: number, what: string, where: URL): Promise<Uint8Array> {
  const tooLarge = () => new PublicationError('too_large', `${shown(where)}: over the ${limit}-byte limit of ${what}`);
  const declared = Number(response.headers.get('content-length') ?? '0');
  if (declared > limit) {
    await response.body?.cancel();
    throw tooLarge();
  }
  if (!response.body) return new Uint8Array(0);
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
    length += chunk.value.length;
    if (length > limit) {
      await reader.cancel();
      throw tooLarge();
    }
    chunks.push(chunk.value);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

/** An index file's text, bounded by MAX_INDEX_BYTES. */
export async function indexText(response: Response, where: URL): Promise<string> {
  return Buffer.from(await bodyWithin(response, MAX_INDEX_BYTES, 'an index', where)).toString('utf8');
}
