// NATS connection settings compiled from flags, the URL and the environment: where each secret comes
// from, what is refused, and what launch hands its children (in the environment, not argv).
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { forwardedArgs } from "../../cli/commands/launch.js";
import { compileLaunchNats } from "../../cli/nats-flags.js";
import { OptionError, UserError } from "../../shared/errors.js";
import { natsConnectionOptions } from "../../shared/nats/connect.js";
import { childNatsEnvironment, compileNatsSettings, type NatsFlags } from "../../shared/nats/settings.js";
import { redactNatsUrl, splitNatsUrl } from "../../shared/nats/url.js";
import { tempDir } from "../support/tiny.js";

const dir = tempDir("nats-settings");
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const PEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const compile = (flags: Partial<NatsFlags>, env: Record<string, string> = {}) =>
  compileNatsSettings({ nats: "nats://127.0.0.1:4222", ...flags }, env);

test("nats url - a token or a user and password written in the URL are split off, as other clients read them", () => {
  assert.deepEqual(splitNatsUrl("nats://s3cret@127.0.0.1:4222"), {
    url: "nats://127.0.0.1:4222",
    credentials: { kind: "token", token: "s3cret" },
  });
  assert.deepEqual(splitNatsUrl("nats://alice:p%40ss%3Aword@nats.example:4222"), {
    url: "nats://nats.example:4222",
    credentials: { kind: "user", user: "alice", password: "p@ss:word" },
  });
  assert.deepEqual(splitNatsUrl("tok@127.0.0.1:4222").credentials, { kind: "token", token: "tok" });
  assert.deepEqual(splitNatsUrl("nats://127.0.0.1:4222"), {
    url: "nats://127.0.0.1:4222",
    credentials: undefined,
  });
  assert.deepEqual(splitNatsUrl("nats://@127.0.0.1:4222"), {
    url: "nats://127.0.0.1:4222",
    credentials: undefined,
  });
  assert.throws(
    () => splitNatsUrl("nats://bad%zz@h:4222"),
    (error: Error) => !error.message.includes("bad"),
  );
});

test("nats url - redaction masks credentials wherever a URL appears in a line", () => {
  assert.equal(
    redactNatsUrl("at nats://alice:pw@h:4222 and tls://tok@h2:4222, not nats://h3:4222"),
    "at nats://***@h:4222 and tls://***@h2:4222, not nats://h3:4222",
  );
});

test("nats settings - flags win over the URL, the URL over the environment", () => {
  const env = { NATS_TOKEN: "from-env" };
  assert.deepEqual(compile({}, env).auth, { kind: "token", token: "from-env", from: "$NATS_TOKEN" });
  const fromUrl = compile({ nats: "nats://from-url@127.0.0.1:4222" }, env);
  assert.equal(fromUrl.url, "nats://127.0.0.1:4222");
  assert.deepEqual(fromUrl.auth, { kind: "token", token: "from-url", from: "the URL" });
  const fromFlag = compile({ nats: "nats://from-url@127.0.0.1:4222", natsToken: "from-flag" }, env);
  assert.deepEqual(fromFlag.auth, { kind: "token", token: "from-flag", from: "--nats-token" });
  assert.deepEqual(compile({}).auth, { kind: "none" });
  assert.deepEqual(compile({}, { NATS_TOKEN: "" }).auth, { kind: "none" }, "an empty variable is unset");
});

test("nats settings - token and password files give their first line; --nats-user takes $NATS_PASSWORD", () => {
  const tokenFile = file("token", "tok-from-file\n");
  assert.deepEqual(compile({ natsTokenFile: tokenFile }).auth, {
    kind: "token",
    token: "tok-from-file",
    from: `--nats-token-file ${tokenFile}`,
  });
  const passwordFile = file("password", "pw-from-file\r\n");
  const user = compile({ natsUser: "alice", natsPasswordFile: passwordFile }).auth;
  assert.deepEqual(user.kind === "user" && [user.user, user.password], ["alice", "pw-from-file"]);
  const envPassword = compile({ natsUser: "bob" }, { NATS_PASSWORD: "pw-env" }).auth;
  assert.deepEqual(envPassword.kind === "user" && envPassword.password, "pw-env");
  const fromEnv = compile({}, { NATS_USER: "carol", NATS_PASSWORD: "pw" }).auth;
  assert.deepEqual(fromEnv.kind === "user" && [fromEnv.user, fromEnv.password], ["carol", "pw"]);
});

test("nats settings - two ways to authenticate, or half of one, is an error naming the flag or variable", () => {
  const refused = (flags: Partial<NatsFlags>, env: Record<string, string>, pattern: RegExp) =>
    assert.throws(
      () => compile(flags, env),
      (error: Error) => error instanceof UserError && pattern.test(error.message),
    );
  refused({ natsToken: "a", natsUser: "b", natsPassword: "c" }, {}, /give one way to authenticate/);
  refused({ natsToken: "a", natsTokenFile: file("t2", "b") }, {}, /--nats-token or --nats-token-file/);
  refused({ natsPassword: "pw" }, {}, /^--nats-password: needs --nats-user/);
  refused({ natsUser: "alice" }, {}, /^--nats-user: needs --nats-password/);
  refused({}, { NATS_USER: "alice" }, /^\$NATS_USER is set without \$NATS_PASSWORD/);
  refused(
    {},
    { NATS_TOKEN: "a", NATS_CREDS: file("c", "x") },
    /\$NATS_CREDS: .* is not a NATS credentials file/,
  );
  refused(
    { natsTokenFile: join(dir, "missing") },
    {},
    /^--nats-token-file: cannot read .*missing \(ENOENT\)/,
  );
  refused({ natsTokenFile: file("empty", "\n") }, {}, /^--nats-token-file: .* is empty/);
  refused({ natsNkey: file("not-a-seed", "SUNOPE\n") }, {}, /^--nats-nkey: .* holds no nkey seed/);
  refused({ natsTlsCa: file("not-pem", "hello") }, {}, /^--nats-tls-ca: .* is not a PEM file/);
  refused({ natsTlsCert: file("cert.pem", PEM) }, {}, /needs its key/);
});

test("nats settings - TLS files come from flags or $NATS_CA/$NATS_CERT/$NATS_KEY and reach nats.js as PEM text", () => {
  const ca = file("ca.pem", PEM);
  const settings = compile(
    { natsTlsCa: ca },
    { NATS_CERT: file("c.pem", PEM), NATS_KEY: file("k.pem", PEM) },
  );
  assert.deepEqual(
    [settings.tls?.ca?.from, settings.tls?.cert?.from, settings.tls?.key?.from],
    ["--nats-tls-ca", "$NATS_CERT", "$NATS_KEY"],
  );
  assert.deepEqual(natsConnectionOptions(settings).tls, { ca: PEM, cert: PEM, key: PEM });
  assert.equal(compile({}).tls, undefined);
  assert.equal(natsConnectionOptions(compile({})).tls, undefined);
});

test("nats settings - a child's environment carries exactly its parent's compiled settings", () => {
  const ca = file("ca2.pem", PEM);
  const base = { PATH: "/bin", NATS_USER: "stale", NATS_PASSWORD: "stale", NATS_CA: "/stale.pem" };
  const token = compile({ nats: "nats://tok@127.0.0.1:4222", natsTlsCa: ca });
  const env = childNatsEnvironment(base, token);
  assert.deepEqual(env, { PATH: "/bin", NATS_TOKEN: "tok", NATS_CA: ca });
  // What the child compiles from that environment (and the clean URL it gets in argv) is what the parent had.
  assert.deepEqual(compileNatsSettings({ nats: token.url }, env), {
    ...token,
    auth: { kind: "token", token: "tok", from: "$NATS_TOKEN" },
    tls: { ca: { ...token.tls?.ca, from: "$NATS_CA" }, cert: undefined, key: undefined },
  });
  assert.deepEqual(childNatsEnvironment(base, compile({})), { PATH: "/bin" });
});

test("launch - NATS security flags are compiled by launch, never forwarded on a command line", () => {
  const args = [
    "--workers",
    "2",
    "--nats-token",
    "s3cret",
    "--nats-password-file=/p",
    "--natsTlsCa",
    "/ca.pem",
  ];
  assert.deepEqual(forwardedArgs(args), ["--workers", "2"]);
});

test("launch - security flags for the nats-server launch starts itself are refused", () => {
  assert.throws(
    () => compileLaunchNats(undefined, { natsToken: "x" }, {}),
    (error: Error) => error instanceof OptionError && error.option === "nats-token",
  );
  assert.equal(compileLaunchNats("embedded", {}, { NATS_TOKEN: "ambient" }), "embedded");
  assert.equal(compileLaunchNats(undefined, {}, { NATS_TOKEN: "ambient" }), undefined);
  const given = compileLaunchNats("nats://tok@h:4222", {}, {});
  assert.ok(given !== undefined && given !== "embedded" && given.url === "nats://h:4222");
});
