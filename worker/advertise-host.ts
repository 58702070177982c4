// Where a worker's ws ring listener says peers reach it, by default (--advertise-host auto): the local
// address this node routes to the NATS server from. Every worker reaches that server, so on a usual
// cluster network its peers reach this address too; a server on loopback gives 127.0.0.1 (a one-node job).
// Found by "connecting" a UDP socket, which asks the kernel's routing table and sends nothing.
import { createSocket } from "node:dgram";
import { lookup } from "node:dns/promises";
import { setTimeout as sleep } from "node:timers/promises";
import { UserError } from "../shared/errors.js";
import { urlHost } from "../shared/url-host.js";

export const AUTO_ADVERTISE_HOST = "auto";
const RESOLVE_TIMEOUT_MS = 10_000;

/** The host of a NATS URL (the first of a comma-separated list), brackets off an IPv6 literal. */
export function natsHost(natsUrl: string): string {
  const first = (natsUrl.split(",")[0] ?? "").trim();
  return urlHost(first.includes("://") ? first : `nats://${first}`);
}

/** The local address the kernel would send from to reach `host`; one line naming the flag if it cannot. */
export async function routeAddressTo(host: string): Promise<string> {
  const failed = (why: string) =>
    new UserError(
      `--advertise-host auto: no route to the NATS server's host ${host} to take this worker's address from (${why}); pass --advertise-host with an address the other workers reach`,
    );
  const resolve = async (): Promise<string> => {
    const { address, family } = await lookup(host);
    const socket = createSocket(family === 6 ? "udp6" : "udp4");
    try {
      await new Promise<void>((done, fail) => {
        socket.once("error", fail);
        socket.connect(9, address, done); // port 9 (discard): nothing is sent by a UDP connect
      });
      return socket.address().address;
    } finally {
      socket.close();
    }
  };
  const deadline = sleep(RESOLVE_TIMEOUT_MS, undefined, { ref: false }).then(() => {
    throw failed(`no answer within ${RESOLVE_TIMEOUT_MS / 1000} s`);
  });
  try {
    return await Promise.race([resolve(), deadline]);
  } catch (error) {
    throw error instanceof UserError ? error : failed((error as Error).message);
  }
}
