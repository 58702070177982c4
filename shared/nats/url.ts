// Credentials written in a NATS URL, as the Go client and the nats CLI take them: nats://TOKEN@host:port
// is a token, nats://USER:PASSWORD@host:port a user and password (percent-encoded where they need it).
// nats.js ignores them, so they are split off here: the URL that is connected to, logged and passed to a
// child process on its command line never carries a secret.
import { UserError } from "../errors.js";

export type UrlCredentials =
  | { readonly kind: "token"; readonly token: string }
  | { readonly kind: "user"; readonly user: string; readonly password: string };

export interface SplitNatsUrl {
  /** The URL without its credentials. */
  readonly url: string;
  readonly credentials: UrlCredentials | undefined;
}

/** "nats://" (optional), then USERINFO up to the "@" before the host. */
const USERINFO = /^([a-z][a-z0-9+.-]*:\/\/)?([^@/]*)@/i;

export function splitNatsUrl(url: string): SplitNatsUrl {
  const match = USERINFO.exec(url);
  if (match === null) return { url, credentials: undefined };
  const scheme = match[1] ?? "";
  const userinfo = match[2] ?? "";
  const bare = scheme + url.slice(match[0].length);
  if (userinfo === "") return { url: bare, credentials: undefined };
  const colon = userinfo.indexOf(":");
  // As the Go client does: no ":" means a token; "user:" a user with an empty password.
  if (colon < 0) return { url: bare, credentials: { kind: "token", token: decode(userinfo, bare) } };
  return {
    url: bare,
    credentials: {
      kind: "user",
      user: decode(userinfo.slice(0, colon), bare),
      password: decode(userinfo.slice(colon + 1), bare),
    },
  };
}

/** Masks credentials in any URL in `text` (nats://***@host:port), for a line that may reach a log. */
export function redactNatsUrl(text: string): string {
  return text.replace(/(:\/\/)[^@/\s]*@/g, "$1***@");
}

function decode(part: string, bareUrl: string): string {
  try {
    return decodeURIComponent(part);
  } catch (error) {
    // The message names the server, never the secret.
    throw new UserError(`--nats ${bareUrl}: the credentials in the URL are not valid percent-encoding`, {
      cause: error,
    });
  }
}
