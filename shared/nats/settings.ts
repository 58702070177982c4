// How to connect to NATS, compiled once from flags, the URL and the environment: the server URL (without
// credentials), one way to authenticate, and TLS. The result is plain data (strings only), so a worker
// thread can receive it and build its own authenticator (connect.ts), and launch can hand it to its
// children through their environment (childNatsEnvironment), never their command line (ps shows argv).
//
// Where each setting comes from, first found wins:
//   auth: flags (--nats-token[-file], --nats-user + --nats-password[-file], --nats-nkey, --nats-creds)
//         → credentials in the URL → $NATS_TOKEN, $NATS_USER + $NATS_PASSWORD, $NATS_NKEY, $NATS_CREDS
//   TLS:  --nats-tls-ca / --nats-tls-cert / --nats-tls-key → $NATS_CA / $NATS_CERT / $NATS_KEY
// (the variable names are the nats CLI's). Two ways to authenticate from the same place is an error.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { credsAuthenticator, nkeyAuthenticator } from "nats";
import { OptionError, UserError } from "../errors.js";
import { splitNatsUrl } from "./url.js";

/** The connection flags, as yargs parses them (camelCase). */
export interface NatsSecurityFlags {
  natsToken?: string | undefined;
  natsTokenFile?: string | undefined;
  natsUser?: string | undefined;
  natsPassword?: string | undefined;
  natsPasswordFile?: string | undefined;
  natsNkey?: string | undefined;
  natsCreds?: string | undefined;
  natsTlsCa?: string | undefined;
  natsTlsCert?: string | undefined;
  natsTlsKey?: string | undefined;
}

export interface NatsFlags extends NatsSecurityFlags {
  /** The server URL; credentials written in it are split off. */
  nats: string;
}

/** The environment variables read, one per setting; launch sets them for its children. */
export const NATS_ENV = {
  token: "NATS_TOKEN",
  user: "NATS_USER",
  password: "NATS_PASSWORD",
  nkey: "NATS_NKEY",
  creds: "NATS_CREDS",
  ca: "NATS_CA",
  cert: "NATS_CERT",
  key: "NATS_KEY",
} as const;

export type Environment = Readonly<Record<string, string | undefined>>;

/** A file's contents, with where its path came from ("--nats-creds", "$NATS_CREDS") for messages. */
export interface FileSetting {
  readonly from: string;
  /** Absolute, so a child process in another directory reads the same file. */
  readonly path: string;
  readonly text: string;
}

/** How this client proves who it is. `from` says where the secret came from, for messages; never the secret. */
export type NatsAuth =
  | { readonly kind: "none" }
  | { readonly kind: "token"; readonly token: string; readonly from: string }
  | { readonly kind: "user"; readonly user: string; readonly password: string; readonly from: string }
  | { readonly kind: "nkey"; readonly seed: FileSetting }
  | { readonly kind: "creds"; readonly creds: FileSetting };

/** PEM files: the CA that signed the server's certificate, and this client's certificate and key. */
export interface NatsTls {
  readonly ca: FileSetting | undefined;
  readonly cert: FileSetting | undefined;
  readonly key: FileSetting | undefined;
}

export interface NatsConnectionSettings {
  /** The server URL without credentials: safe to log and to put on a command line. */
  readonly url: string;
  readonly auth: NatsAuth;
  /** undefined: no TLS settings (a server that requires TLS is still verified against the system's CAs). */
  readonly tls: NatsTls | undefined;
}

export function compileNatsSettings(flags: NatsFlags, env: Environment): NatsConnectionSettings {
  const { url, credentials } = splitNatsUrl(flags.nats);
  const fromUrl: NatsAuth | undefined =
    credentials === undefined
      ? undefined
      : credentials.kind === "token"
        ? { kind: "token", token: credentials.token, from: "the URL" }
        : {
            kind: "user",
            user: nonEmpty(`--nats ${url}`, credentials.user, "the URL's user"),
            password: credentials.password,
            from: "the URL",
          };
  return {
    url,
    auth: authFromFlags(flags, env) ?? fromUrl ?? authFromEnvironment(env) ?? { kind: "none" },
    tls: compileTls(flags, env),
  };
}

/** "the token from $NATS_TOKEN", "user alice from the URL": for messages and logs, never the secret. */
export function describeNatsAuth(auth: NatsAuth): string {
  switch (auth.kind) {
    case "none":
      return "no credentials";
    case "token":
      return `the token from ${auth.from}`;
    case "user":
      return `user ${auth.user} from ${auth.from}`;
    case "nkey":
      return `the nkey seed ${auth.seed.from} ${auth.seed.path}`;
    case "creds":
      return `the credentials ${auth.creds.from} ${auth.creds.path}`;
  }
}

/**
 * The environment a child process needs to connect as `settings` do: `base` with every variable of
 * NATS_ENV replaced (unset where these settings have nothing), so a child reads exactly what its parent
 * compiled and the secrets stay out of its command line.
 */
export function childNatsEnvironment(base: Environment, settings: NatsConnectionSettings): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const name of Object.values(NATS_ENV)) delete env[name];
  const { auth, tls } = settings;
  if (auth.kind === "token") env[NATS_ENV.token] = auth.token;
  if (auth.kind === "user") {
    env[NATS_ENV.user] = auth.user;
    env[NATS_ENV.password] = auth.password;
  }
  if (auth.kind === "nkey") env[NATS_ENV.nkey] = auth.seed.path;
  if (auth.kind === "creds") env[NATS_ENV.creds] = auth.creds.path;
  if (tls?.ca) env[NATS_ENV.ca] = tls.ca.path;
  if (tls?.cert) env[NATS_ENV.cert] = tls.cert.path;
  if (tls?.key) env[NATS_ENV.key] = tls.key.path;
  return env;
}

function authFromFlags(flags: NatsSecurityFlags, env: Environment): NatsAuth | undefined {
  const ways: NatsAuth[] = [];
  if (flags.natsToken !== undefined && flags.natsTokenFile !== undefined)
    throw new OptionError("nats-token", "give --nats-token or --nats-token-file, not both");
  if (flags.natsToken !== undefined)
    ways.push({ kind: "token", token: nonEmpty("--nats-token", flags.natsToken), from: "--nats-token" });
  if (flags.natsTokenFile !== undefined) {
    const token = readSecret("--nats-token-file", flags.natsTokenFile);
    ways.push({ kind: "token", token, from: `--nats-token-file ${flags.natsTokenFile}` });
  }
  if (flags.natsUser !== undefined) ways.push(userFromFlags(flags.natsUser, flags, env));
  else if (flags.natsPassword !== undefined || flags.natsPasswordFile !== undefined)
    throw new OptionError("nats-password", "needs --nats-user");
  if (flags.natsNkey !== undefined) ways.push(nkey(readFile("--nats-nkey", flags.natsNkey)));
  if (flags.natsCreds !== undefined) ways.push(creds(readFile("--nats-creds", flags.natsCreds)));
  if (ways.length > 1)
    throw new OptionError(
      "nats-token",
      "give one way to authenticate: --nats-token(-file), --nats-user, --nats-nkey or --nats-creds",
    );
  return ways[0];
}

/** --nats-user takes its password from --nats-password, --nats-password-file or $NATS_PASSWORD. */
function userFromFlags(user: string, flags: NatsSecurityFlags, env: Environment): NatsAuth {
  if (flags.natsPassword !== undefined && flags.natsPasswordFile !== undefined)
    throw new OptionError("nats-password", "give --nats-password or --nats-password-file, not both");
  nonEmpty("--nats-user", user);
  if (flags.natsPassword !== undefined)
    return { kind: "user", user, password: flags.natsPassword, from: "--nats-user/--nats-password" };
  if (flags.natsPasswordFile !== undefined) {
    const password = readSecret("--nats-password-file", flags.natsPasswordFile);
    return {
      kind: "user",
      user,
      password,
      from: `--nats-user/--nats-password-file ${flags.natsPasswordFile}`,
    };
  }
  const password = set(env, NATS_ENV.password);
  if (password === undefined)
    throw new OptionError(
      "nats-user",
      `needs --nats-password, --nats-password-file or $${NATS_ENV.password}`,
    );
  return { kind: "user", user, password, from: `--nats-user/$${NATS_ENV.password}` };
}

function authFromEnvironment(env: Environment): NatsAuth | undefined {
  const ways: NatsAuth[] = [];
  const token = set(env, NATS_ENV.token);
  if (token !== undefined) ways.push({ kind: "token", token, from: `$${NATS_ENV.token}` });
  const user = set(env, NATS_ENV.user);
  const password = set(env, NATS_ENV.password);
  if (user !== undefined) {
    if (password === undefined) throw new UserError(`$${NATS_ENV.user} is set without $${NATS_ENV.password}`);
    ways.push({ kind: "user", user, password, from: `$${NATS_ENV.user}/$${NATS_ENV.password}` });
  }
  const seedPath = set(env, NATS_ENV.nkey);
  if (seedPath !== undefined) ways.push(nkey(readFile(`$${NATS_ENV.nkey}`, seedPath)));
  const credsPath = set(env, NATS_ENV.creds);
  if (credsPath !== undefined) ways.push(creds(readFile(`$${NATS_ENV.creds}`, credsPath)));
  if (ways.length > 1)
    throw new UserError(
      `set one way to authenticate: $${NATS_ENV.token}, $${NATS_ENV.user}, $${NATS_ENV.nkey} or $${NATS_ENV.creds}`,
    );
  return ways[0];
}

function compileTls(flags: NatsSecurityFlags, env: Environment): NatsTls | undefined {
  const pem = (flag: string, path: string | undefined, variable: string): FileSetting | undefined => {
    const fromEnv = set(env, variable);
    const setting =
      path !== undefined
        ? readFile(flag, path)
        : fromEnv !== undefined
          ? readFile(`$${variable}`, fromEnv)
          : undefined;
    if (setting !== undefined && !setting.text.includes("-----BEGIN "))
      throw settingError(setting.from, `${setting.path} is not a PEM file`);
    return setting;
  };
  const ca = pem("--nats-tls-ca", flags.natsTlsCa, NATS_ENV.ca);
  const cert = pem("--nats-tls-cert", flags.natsTlsCert, NATS_ENV.cert);
  const key = pem("--nats-tls-key", flags.natsTlsKey, NATS_ENV.key);
  if ((cert === undefined) !== (key === undefined))
    throw settingError(
      (cert ?? key)?.from ?? "--nats-tls-cert",
      "a client certificate needs its key: give both",
    );
  return ca === undefined && cert === undefined ? undefined : { ca, cert, key };
}

/** Checked here, with nats.js's own parsers, so a bad file is an error at start-up rather than at connect. */
function nkey(seed: FileSetting): NatsAuth {
  try {
    nkeyAuthenticator(new TextEncoder().encode(seed.text.trim()))("");
  } catch (error) {
    throw settingError(seed.from, `${seed.path} holds no nkey seed (a line starting with SU)`, error);
  }
  return { kind: "nkey", seed: { ...seed, text: seed.text.trim() } };
}

function creds(file: FileSetting): NatsAuth {
  try {
    credsAuthenticator(new TextEncoder().encode(file.text))("");
  } catch (error) {
    throw settingError(
      file.from,
      `${file.path} is not a NATS credentials file (a user JWT and its seed)`,
      error,
    );
  }
  return { kind: "creds", creds: file };
}

function readFile(from: string, path: string): FileSetting {
  try {
    return { from, path: resolve(path), text: readFileSync(path, "utf8") };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw settingError(from, `cannot read ${path} (${code})`, error);
  }
}

/** A token or password file: its first line, without the newline an editor or `echo` adds. */
function readSecret(from: string, path: string): string {
  const text = readFile(from, path).text.replace(/\r?\n$/, "");
  if (text.includes("\n")) throw settingError(from, `${path} must hold the secret on one line`);
  return nonEmpty(from, text, `${path}`);
}

/** An environment variable's value; empty counts as unset. */
function set(env: Environment, name: string): string | undefined {
  const value = env[name];
  return value === undefined || value === "" ? undefined : value;
}

function nonEmpty(from: string, value: string, what = "the value"): string {
  if (value === "") throw settingError(from, `${what} is empty`);
  return value;
}

/** A flag's error names the flag (OptionError); an environment variable's names the variable. */
function settingError(from: string, reason: string, cause?: unknown): UserError {
  const flag = /^--([a-z-]+)$/.exec(from)?.[1];
  return flag !== undefined ? new OptionError(flag, reason) : new UserError(`${from}: ${reason}`, { cause });
}
