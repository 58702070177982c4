// The ws data plane's admission check (coordinator/remote/ws-reachability.ts) and the worker's default
// advertised address (worker/advertise-host.ts).
import assert from "node:assert/strict";
import { networkInterfaces } from "node:os";
import { test } from "node:test";
import { unreachableRingAddress } from "../../coordinator/remote/ws-reachability.js";
import { natsHost, routeAddressTo } from "../../worker/advertise-host.js";

const member = (name: string, host: string, dataPlaneAddress: string) => ({ name, host, dataPlaneAddress });

test("ws reachability - loopback addresses on one host are fine; across hosts the loopback worker is named", () => {
  assert.equal(
    unreachableRingAddress([
      member("a", "n1", "ws://127.0.0.1:4000"),
      member("b", "n1", "ws://127.0.0.1:4001"),
    ]),
    undefined,
  );
  assert.equal(
    unreachableRingAddress([
      member("a", "n1", "ws://10.0.0.1:4000"),
      member("b", "n2", "ws://10.0.0.2:4001"),
    ]),
    undefined,
  );
  assert.equal(
    unreachableRingAddress([member("a", "n1", ""), member("b", "n2", "")]),
    undefined,
    "NATS plane",
  );
  const why = unreachableRingAddress([
    member("a", "n1", "ws://10.0.0.1:4000"),
    member("b", "n2", "ws://[::1]:4001"),
    member("c", "n3", "ws://10.0.0.3:4002"),
  ]);
  assert.equal(
    why,
    "--data-plane ws: worker b on n2 advertises ws://[::1]:4001, which workers on n1, n3 cannot reach; start it with --advertise-host set to an address they reach (or auto), or use --data-plane nats",
  );
});

test("advertise host - the NATS URL's host, and the local address routed to it", async () => {
  assert.equal(natsHost("nats://user:pw@nats.example:4222"), "nats.example");
  assert.equal(natsHost("tls://[fd00::1]:4222,nats://b:4222"), "fd00::1");
  assert.equal(natsHost("127.0.0.1:4222"), "127.0.0.1");
  assert.equal(await routeAddressTo("127.0.0.1"), "127.0.0.1");
  // A non-loopback destination is reached from one of this machine's own non-loopback addresses.
  const own = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i !== undefined && i.family === "IPv4" && !i.internal)
    .map((i) => i?.address);
  if (own.length > 0) assert.ok(own.includes(await routeAddressTo("192.0.2.1")), `one of ${own.join(", ")}`);
  await assert.rejects(
    routeAddressTo("no-such-host.invalid"),
    /^UserError: --advertise-host auto: no route to the NATS server's host no-such-host\.invalid .*pass --advertise-host/,
  );
});
