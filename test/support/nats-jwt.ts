// A decentralised-auth NATS setup for tests, made without nsc: an operator, one account and one user,
// their JWTs signed with nkeys (ed25519), a nats-server config that trusts the operator and preloads the
// account, and the user's credentials file (what --nats-creds takes).
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { nkeys as untypedNkeys } from "nats";

interface KeyPair {
  getPublicKey(): string;
  getSeed(): Uint8Array;
  sign(data: Uint8Array): Uint8Array;
}

/** nats.js re-exports nkeys.js untyped; these are the calls used here and in tests. */
export const nkeys = untypedNkeys as {
  createOperator(): KeyPair;
  createAccount(): KeyPair;
  createUser(): KeyPair;
};

export interface NatsJwtSetup {
  /** nats-server config: the trusted operator and the account, in memory. */
  readonly configFile: string;
  /** The user's JWT and seed. */
  readonly credsFile: string;
}

const base64url = (data: string | Uint8Array) => Buffer.from(data).toString("base64url");

function jwt(issuer: KeyPair, subject: KeyPair, name: string, nats: Record<string, unknown>): string {
  const claims = {
    jti: base64url(subject.getPublicKey()).slice(0, 26),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject.getPublicKey(),
    nats: { ...nats, version: 2 },
  };
  const signed = `${base64url(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }))}.${base64url(JSON.stringify(claims))}`;
  return `${signed}.${base64url(issuer.sign(new TextEncoder().encode(signed)))}`;
}

export function writeNatsJwtSetup(dir: string): NatsJwtSetup {
  const operator = nkeys.createOperator();
  const account = nkeys.createAccount();
  const user = nkeys.createUser();
  const unlimited = { subs: -1, data: -1, payload: -1 };
  const accountLimits = { ...unlimited, imports: -1, exports: -1, wildcards: true, conn: -1, leaf: -1 };
  const configFile = join(dir, "operator.conf");
  writeFileSync(
    configFile,
    [
      `operator: ${jwt(operator, operator, "imtrain-test", { type: "operator" })}`,
      "resolver: MEMORY",
      "resolver_preload: {",
      `  ${account.getPublicKey()}: ${jwt(operator, account, "imtrain", { type: "account", limits: accountLimits })}`,
      "}",
      "",
    ].join("\n"),
  );
  const credsFile = join(dir, "user.creds");
  writeFileSync(
    credsFile,
    [
      "-----BEGIN NATS USER JWT-----",
      jwt(account, user, "worker", { type: "user", pub: {}, sub: {}, ...unlimited }),
      "------END NATS USER JWT------",
      "",
      "-----BEGIN USER NKEY SEED-----",
      new TextDecoder().decode(user.getSeed()),
      "------END USER NKEY SEED------",
      "",
    ].join("\n"),
  );
  return { configFile, credsFile };
}
