// A connection NATS refused, said in one line that names the server and what to give: wrong or missing
// credentials, a certificate this client cannot verify, TLS asked of a server without it. nats.js fails
// the first connect at once on these (it retries only connections it once had), so this is said within
// moments of starting, never after a reconnect loop.
import { ErrorCode, NatsError } from "nats";
import { UserError } from "../errors.js";
import { describeNatsAuth, type NatsConnectionSettings } from "./settings.js";

export type NatsRefusal = "auth" | "tls" | "unreachable";

export class NatsConnectError extends UserError {
  override readonly name = "NatsConnectError";
  constructor(
    /** The server, without credentials. */
    readonly url: string,
    readonly refusal: NatsRefusal,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const AUTH_CODES: readonly string[] = [
  ErrorCode.AuthorizationViolation,
  ErrorCode.AuthenticationExpired,
  ErrorCode.AuthenticationTimeout,
  ErrorCode.BadAuthentication,
  ErrorCode.BadCreds,
  ErrorCode.AccountExpired,
];

/** Node's codes for a server certificate that does not chain to a trusted CA. */
const UNTRUSTED_CERT =
  /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|CERT_SIGNATURE_FAILURE|CERT_UNTRUSTED/;
/** Any other TLS failure: a certificate for another host, an expired one, a failed handshake. */
const OTHER_TLS = /CERT|ERR_TLS|ERR_SSL|EPROTO/;

const GIVE_CREDENTIALS =
  "give --nats-token(-file), --nats-user/--nats-password, --nats-nkey, --nats-creds or credentials in the URL";

export function explainConnectError(settings: NatsConnectionSettings, error: unknown): NatsConnectError {
  const { url, auth, tls } = settings;
  const code = (error as { code?: unknown } | undefined)?.code;
  const message = ((error as Error | undefined)?.message ?? String(error)).replace(/^'(.*)'$/, "$1");
  const refused = (refusal: NatsRefusal, line: string) =>
    new NatsConnectError(url, refusal, line, { cause: error });
  if (typeof code !== "string") return refused("unreachable", `cannot reach NATS at ${url}: ${message}`);
  if (AUTH_CODES.includes(code)) {
    const hint = auth.kind === "none" ? GIVE_CREDENTIALS : `check ${describeNatsAuth(auth)}`;
    return refused("auth", `NATS at ${url} refused the connection (${message}): ${hint}`);
  }
  if (error instanceof NatsError && code === ErrorCode.ServerOptionNotAvailable && message === "tls") {
    const asked = [tls?.ca, tls?.cert].filter((f) => f !== undefined).map((f) => f.from);
    return refused("tls", `NATS at ${url} does not offer TLS, but ${asked.join(" and ")} asked for it`);
  }
  if (UNTRUSTED_CERT.test(code)) {
    const hint =
      tls?.ca === undefined
        ? "give --nats-tls-ca with the CA that signed the server's certificate"
        : `${tls.ca.from} ${tls.ca.path} is not the CA that signed the server's certificate`;
    return refused("tls", `NATS at ${url}: TLS failed (${message}): ${hint}`);
  }
  if (OTHER_TLS.test(code) || code === ErrorCode.Tls)
    return refused("tls", `NATS at ${url}: TLS failed (${message}, ${code})`);
  if (code === ErrorCode.Timeout && tls !== undefined && tls.cert === undefined)
    return refused(
      "unreachable",
      `NATS at ${url} did not complete the connection (${message}): if it requires client certificates, give --nats-tls-cert and --nats-tls-key`,
    );
  return refused("unreachable", `cannot reach NATS at ${url}: ${message}`);
}
