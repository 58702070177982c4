// A URL's host as an address: WHATWG URLs keep an IPv6 literal in brackets ("[::1]"), which neither the
// resolver nor a comparison with "::1" expects.

/** The hostname of `url`, brackets off an IPv6 literal; throws as `new URL` does on a malformed URL. */
export function urlHost(url: string): string {
  return new URL(url).hostname.replace(/^\[(.*)\]$/, "$1");
}
