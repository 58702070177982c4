// Connections to a real nats-server that requires credentials or TLS, made the way every imtrain process
// makes them (compileNatsSettings → connectToNats), including the worker's heartbeat thread; and every
// refusal said in one line that names the server and what to give.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { connectToNats } from "../../shared/nats/connect.js";
import { NatsConnectError } from "../../shared/nats/connect-error.js";
import { compileNatsSettings, type NatsFlags } from "../../shared/nats/settings.js";
import { encodeMessage } from "../../shared/protocol.js";
import { startHeartbeats } from "../../worker/heartbeats.js";
import { newServerToken } from "../../coordinator/nats/server-process.js";
import { startConfiguredNatsServer } from "../support/nats.js";
import { writeNatsJwtSetup, nkeys } from "../support/nats-jwt.js";
import { makeTestCa, natsTlsConfig, requireOpenssl, type TestCa } from "../support/test-ca.js";
import { tempDir } from "../support/tiny.js";

const TEST_TIMEOUT_MS = 30_000;
const dir = tempDir("nats-auth");

const server = startConfiguredNatsServer;

/** Connects as an imtrain process would with these flags and environment, then closes. */
async function connectWith(url: string, flags: Partial<NatsFlags>, env: Record<string, string> = {}) {
  const nc = await connectToNats(compileNatsSettings({ nats: url, ...flags }, env), { reconnect: false });
  await nc.close();
}

async function refused(
  url: string,
  flags: Partial<NatsFlags>,
  pattern: RegExp,
  env: Record<string, string> = {},
): Promise<void> {
  const startedMs = Date.now();
  await assert.rejects(connectWith(url, flags, env), (error: Error) => {
    assert.ok(error instanceof NatsConnectError, String(error));
    assert.match(error.message, pattern);
    assert.doesNotMatch(error.message, /\n/, "one line");
    return true;
  });
  assert.ok(Date.now() - startedMs < 5_000, `refused after ${Date.now() - startedMs} ms`);
}

test(
  "nats auth - a token server admits the token from the URL, a flag or $NATS_TOKEN, and refuses others in one line",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const token = newServerToken();
    const nats = await server(t, { token });
    if (nats === undefined) return;
    const withToken = nats.url.replace("nats://", `nats://${token}@`);
    await connectWith(withToken, {});
    await connectWith(nats.url, { natsToken: token });
    await connectWith(nats.url, {}, { NATS_TOKEN: token });
    await refused(
      nats.url,
      {},
      /^NATS at nats:\/\/127\.0\.0\.1:\d+ refused the connection \(Authorization Violation\): give --nats-token\(-file\), --nats-user\/--nats-password, --nats-nkey, --nats-creds or credentials in the URL$/,
    );
    await refused(
      nats.url,
      { natsToken: "wrong" },
      /refused the connection \(Authorization Violation\): check the token from --nats-token$/,
    );
  },
);

test(
  "nats auth - nkey: the seed file is the key; another seed is refused, naming the file",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const user = nkeys.createUser();
    const nats = await server(t, {
      config: `authorization {\n  users: [ { nkey: ${user.getPublicKey()} } ]\n}\n`,
    });
    if (nats === undefined) return;
    const seedFile = join(dir, "user.nk");
    writeFileSync(seedFile, `${new TextDecoder().decode(user.getSeed())}\n`);
    await connectWith(nats.url, { natsNkey: seedFile });
    await connectWith(nats.url, {}, { NATS_NKEY: seedFile });
    const otherFile = join(dir, "other.nk");
    writeFileSync(otherFile, new TextDecoder().decode(nkeys.createUser().getSeed()));
    await refused(
      nats.url,
      { natsNkey: otherFile },
      /refused the connection .*: check the nkey seed --nats-nkey .*other\.nk$/,
    );
  },
);

test(
  "nats auth - creds: a user JWT signed by the server's trusted operator gets in; none is refused",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const setup = writeNatsJwtSetup(tempDir("nats-jwt"));
    const nats = await server(t, { configFile: setup.configFile });
    if (nats === undefined) return;
    await connectWith(nats.url, { natsCreds: setup.credsFile });
    await connectWith(nats.url, {}, { NATS_CREDS: setup.credsFile });
    await refused(nats.url, {}, /refused the connection \(Authorization Violation\): give /);
  },
);

test(
  "nats auth - TLS: --nats-tls-ca verifies the server; without it, with another CA, or against a plain server, one line says so",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (!requireOpenssl(t)) return;
    const ca = makeTestCa();
    const nats = await server(t, { config: natsTlsConfig(ca) });
    const plain = await server(t, {});
    if (nats === undefined || plain === undefined) return;
    await connectWith(nats.url, { natsTlsCa: ca.caFile });
    await connectWith(nats.url.replace("nats://", "tls://"), {}, { NATS_CA: ca.caFile });
    await refused(
      nats.url,
      {},
      /^NATS at nats:\/\/127\.0\.0\.1:\d+: TLS failed \(.*\): give --nats-tls-ca with the CA that signed the server's certificate$/,
    );
    const other: TestCa = makeTestCa();
    await refused(
      nats.url,
      { natsTlsCa: other.caFile },
      /TLS failed .*: --nats-tls-ca .*ca\.pem is not the CA that signed the server's certificate$/,
    );
    await refused(
      plain.url,
      { natsTlsCa: ca.caFile },
      /^NATS at nats:\/\/127\.0\.0\.1:\d+ does not offer TLS, but --nats-tls-ca asked for it$/,
    );
  },
);

test(
  "nats auth - TLS with client certificates: --nats-tls-cert and --nats-tls-key get in",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    if (!requireOpenssl(t)) return;
    const ca = makeTestCa();
    const nats = await server(t, { config: natsTlsConfig(ca, true) });
    if (nats === undefined) return;
    await connectWith(nats.url, {
      natsTlsCa: ca.caFile,
      natsTlsCert: ca.clientCertFile,
      natsTlsKey: ca.clientKeyFile,
    });
  },
);

test(
  "nats auth - a worker's heartbeat thread connects with the worker's settings (built inside the thread)",
  { timeout: TEST_TIMEOUT_MS },
  async (t) => {
    const token = newServerToken();
    const nats = await server(t, { token });
    if (nats === undefined) return;
    const settings = compileNatsSettings({ nats: nats.url, natsToken: token }, {});
    const listener = await connectToNats(settings);
    t.after(() => listener.close());
    const subject = "imtrain.auth-test.coordinator";
    const beats = listener.subscribe(subject, { max: 2 });
    await listener.flush();
    const heartbeats = await startHeartbeats({
      nats: settings,
      subject,
      rank: 3,
      periodMs: 50,
      name: "auth-test",
    });
    t.after(() => heartbeats.stop());
    for await (const message of beats)
      assert.deepEqual(Buffer.from(message.data), Buffer.from(encodeMessage({ type: "heartbeat", rank: 3 })));
    await assert.rejects(
      startHeartbeats({
        nats: { ...settings, auth: { kind: "none" } },
        subject,
        rank: 4,
        periodMs: 50,
        name: "auth-test",
      }),
      /auth-test: heartbeats could not start: NATS at .* refused the connection \(Authorization Violation\)/,
    );
  },
);
