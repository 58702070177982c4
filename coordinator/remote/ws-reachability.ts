// The ws data plane links workers directly, at the addresses they advertise. A worker that advertises a
// loopback address (127.0.0.1, the old --advertise-host default) can only be reached from its own host: in
// a job that spans hosts the ring would hang on connecting. Refused at admission with the fix instead.
import { urlHost } from "../../shared/url-host.js";

export interface RingMemberAddress {
  readonly name: string;
  /** The host the worker said it runs on, when it joined. */
  readonly host: string;
  /** Its ws listener, ws://host:port; empty on the NATS plane. */
  readonly dataPlaneAddress: string;
}

function isLoopback(address: string): boolean {
  let host: string;
  try {
    host = urlHost(address);
  } catch {
    return false;
  }
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

/** Why the ring cannot link up, naming a worker and the flag to set; undefined if it can. */
export function unreachableRingAddress(members: readonly RingMemberAddress[]): string | undefined {
  if (new Set(members.map((m) => m.host)).size <= 1) return undefined;
  const local = members.find((m) => isLoopback(m.dataPlaneAddress));
  if (local === undefined) return undefined;
  const others = [...new Set(members.filter((m) => m.host !== local.host).map((m) => m.host))].join(", ");
  return `--data-plane ws: worker ${local.name} on ${local.host} advertises ${local.dataPlaneAddress}, which workers on ${others} cannot reach; start it with --advertise-host set to an address they reach (or auto), or use --data-plane nats`;
}
