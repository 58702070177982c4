// How every command that connects to NATS (coordinator, worker, launch) authenticates and verifies the
// server. Each secret has a way in that keeps it off the command line, which `ps` shows to every user:
// a file flag or an environment variable. Compiled by shared/nats/settings.ts.
import type { Argv } from "yargs";
import { OptionError } from "../shared/errors.js";
import {
  NATS_ENV,
  compileNatsSettings,
  type Environment,
  type NatsConnectionSettings,
  type NatsSecurityFlags,
} from "../shared/nats/settings.js";

/** Every flag below; each takes a value (launch consumes them rather than forwarding them). */
export const NATS_SECURITY_FLAGS = [
  "nats-token",
  "nats-token-file",
  "nats-user",
  "nats-password",
  "nats-password-file",
  "nats-nkey",
  "nats-creds",
  "nats-tls-ca",
  "nats-tls-cert",
  "nats-tls-key",
] as const;

const GROUP = "NATS security (or credentials in the URL: nats://TOKEN@host, nats://USER:PASSWORD@host):";

export function natsSecurityFlags<T>(yargs: Argv<T>) {
  return yargs
    .option("nats-token", {
      type: "string",
      describe: `Token the server requires (shown by ps: prefer --nats-token-file or $${NATS_ENV.token})`,
    })
    .option("nats-token-file", { type: "string", describe: "File holding the token (its first line)" })
    .option("nats-user", { type: "string", describe: `User name (default $${NATS_ENV.user})` })
    .option("nats-password", {
      type: "string",
      describe: `Password for --nats-user (shown by ps: prefer --nats-password-file or $${NATS_ENV.password})`,
    })
    .option("nats-password-file", { type: "string", describe: "File holding the password (its first line)" })
    .option("nats-nkey", { type: "string", describe: `NKey seed file (default $${NATS_ENV.nkey})` })
    .option("nats-creds", {
      type: "string",
      describe: `Credentials file: a user JWT and its seed, as nsc writes it (default $${NATS_ENV.creds})`,
    })
    .option("nats-tls-ca", {
      type: "string",
      describe: `PEM file of the CA that signed the server's certificate; turns TLS on (default $${NATS_ENV.ca})`,
    })
    .option("nats-tls-cert", {
      type: "string",
      describe: `PEM client certificate, for a server that verifies clients (default $${NATS_ENV.cert})`,
    })
    .option("nats-tls-key", {
      type: "string",
      describe: `PEM key of --nats-tls-cert (default $${NATS_ENV.key})`,
    })
    .group([...NATS_SECURITY_FLAGS], GROUP);
}

/**
 * launch's NATS: a server given by URL (compiled with its credentials), "embedded" for the in-process bus,
 * or undefined for a nats-server launch starts and protects with a token of its own; security flags for
 * a server launch starts are a mistake worth saying.
 */
export function compileLaunchNats(
  url: string | undefined,
  flags: NatsSecurityFlags,
  env: Environment,
): NatsConnectionSettings | "embedded" | undefined {
  if (url !== undefined && url !== "embedded") return compileNatsSettings({ ...flags, nats: url }, env);
  const given = NATS_SECURITY_FLAGS.find((flag) => flags[camel(flag)] !== undefined);
  if (given !== undefined)
    throw new OptionError(
      given,
      "applies to a NATS server given with --nats URL; the nats-server launch starts gets a token of its own",
    );
  return url;
}

function camel(flag: (typeof NATS_SECURITY_FLAGS)[number]): keyof NatsSecurityFlags {
  return flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase()) as keyof NatsSecurityFlags;
}
