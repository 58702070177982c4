// A throwaway certificate authority for TLS tests, made with the openssl CLI: a CA, a server certificate
// for 127.0.0.1 and localhost, and a client certificate, as PEM files in a temp directory. Missing openssl
// skips the test locally but fails it in CI, like a missing nats-server.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { tempDir } from "./tiny.js";

export interface TestCa {
  readonly dir: string;
  /** The CA's certificate: what a client gives as --nats-tls-ca. */
  readonly caFile: string;
  readonly serverCertFile: string;
  readonly serverKeyFile: string;
  readonly clientCertFile: string;
  readonly clientKeyFile: string;
}

/** True, or false after marking the test skipped (locally) — or throws in CI. */
export function requireOpenssl(t: TestContext): boolean {
  if (spawnSync("openssl", ["version"]).status === 0) return true;
  if (process.env["CI"] === "true") throw new Error("openssl is not installed: CI must install it");
  t.skip("openssl not installed (apt-get install openssl)");
  return false;
}

export function makeTestCa(): TestCa {
  const dir = tempDir("ca");
  const path = (name: string) => join(dir, name);
  const openssl = (...args: string[]) => {
    const result = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (result.status !== 0) throw new Error(`openssl ${args.join(" ")} failed:\n${result.stderr}`);
  };
  const key = ["-newkey", "rsa:2048", "-nodes"];
  openssl(
    "req",
    "-x509",
    ...key,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=imtrain test CA",
  );
  const sign = (name: string, subject: string, extensions: string) => {
    writeFileSync(path(`${name}.ext`), `${extensions}\n`);
    openssl("req", ...key, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subject);
    openssl(
      ...["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"],
      ...["-out", `${name}.pem`, "-days", "1", "-extfile", `${name}.ext`],
    );
  };
  sign("server", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost");
  sign("client", "/CN=imtrain-client", "extendedKeyUsage=clientAuth");
  return {
    dir,
    caFile: path("ca.pem"),
    serverCertFile: path("server.pem"),
    serverKeyFile: path("server.key"),
    clientCertFile: path("client.pem"),
    clientKeyFile: path("client.key"),
  };
}

/** nats-server's tls block for this CA's server certificate; `verifyClients` requires client certificates. */
export function natsTlsConfig(ca: TestCa, verifyClients = false): string {
  const lines = [
    `  cert_file: ${JSON.stringify(ca.serverCertFile)}`,
    `  key_file: ${JSON.stringify(ca.serverKeyFile)}`,
  ];
  if (verifyClients) lines.push(`  ca_file: ${JSON.stringify(ca.caFile)}`, "  verify: true");
  return `tls {\n${lines.join("\n")}\n}\n`;
}
