// Every NATS connection imtrain makes goes through here: the compiled settings (settings.ts) become
// nats.js ConnectionOptions, and a refused connection becomes one clear line (connect-error.ts).
import {
  connect,
  credsAuthenticator,
  nkeyAuthenticator,
  type ConnectionOptions,
  type NatsConnection,
  type TlsOptions,
} from "nats";
import { explainConnectError } from "./connect-error.js";
import type { NatsAuth, NatsConnectionSettings, NatsTls } from "./settings.js";

/** What a caller may add: everything but the server, the credentials and TLS, which `settings` decide. */
export type NatsClientOptions = Omit<
  ConnectionOptions,
  "servers" | "token" | "user" | "pass" | "authenticator" | "tls"
>;

export function natsConnectionOptions(settings: NatsConnectionSettings): ConnectionOptions {
  return {
    servers: settings.url,
    ...authOptions(settings.auth),
    ...(settings.tls === undefined ? {} : { tls: tlsOptions(settings.tls) }),
  };
}

/** Connects, or throws a NatsConnectError naming the server and what to give. */
export async function connectToNats(
  settings: NatsConnectionSettings,
  options: NatsClientOptions = {},
): Promise<NatsConnection> {
  try {
    return await connect({ ...options, ...natsConnectionOptions(settings) });
  } catch (error) {
    throw explainConnectError(settings, error);
  }
}

/** Connects once and closes: a start-up check that fails in one line rather than in every child process. */
export async function checkNatsConnection(settings: NatsConnectionSettings, name: string): Promise<void> {
  const nc = await connectToNats(settings, { name, reconnect: false });
  await nc.close();
}

function authOptions(auth: NatsAuth): Partial<ConnectionOptions> {
  const bytes = (text: string) => new TextEncoder().encode(text);
  switch (auth.kind) {
    case "none":
      return {};
    case "token":
      return { token: auth.token };
    case "user":
      return { user: auth.user, pass: auth.password };
    case "nkey":
      return { authenticator: nkeyAuthenticator(bytes(auth.seed.text)) };
    case "creds":
      return { authenticator: credsAuthenticator(bytes(auth.creds.text)) };
  }
}

function tlsOptions(tls: NatsTls): TlsOptions {
  return {
    ...(tls.ca ? { ca: tls.ca.text } : {}),
    ...(tls.cert ? { cert: tls.cert.text } : {}),
    ...(tls.key ? { key: tls.key.text } : {}),
  };
}
