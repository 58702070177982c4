// One of the two processes of the tcp_loopback_pair figure (bench/allreduce.ts): it listens on loopback,
// prints its port, reads its peer's port from stdin, then sends BYTES to the peer while receiving BYTES
// from it (the traffic each rank of a 2-rank ring carries in one all-reduce) and prints the seconds that
// took. Exits 1 on any socket error, and when its stdin closes first (the bench is gone).
import { once } from "node:events";
import { connect, createServer, type AddressInfo, type Socket } from "node:net";

const WRITE_BYTES = 2 ** 20;

async function main(bytes: number): Promise<void> {
  process.stdin.once("end", () => process.exit(1)); // the bench is gone, whatever this one is waiting for
  const server = createServer({ noDelay: true });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const accepted = once(server, "connection") as Promise<[Socket]>;
  process.stdout.write(`${(server.address() as AddressInfo).port}\n`);
  const [line] = (await once(process.stdin, "data")) as [Buffer];
  const client = connect(Number(line.toString().trim()), "127.0.0.1");
  await once(client, "connect");
  const [incoming] = await accepted;
  let received = 0;
  const start = performance.now();
  const receivedAll = new Promise<void>((resolve, reject) => {
    incoming.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received >= bytes) resolve();
    });
    incoming.once("error", reject);
    incoming.once("close", () => reject(new Error(`closed after ${received} of ${bytes} bytes`)));
  });
  receivedAll.catch(() => undefined); // awaited below
  const block = Buffer.alloc(WRITE_BYTES, 0x5a);
  for (let sent = 0; sent < bytes; sent += block.length) {
    const piece = sent + block.length <= bytes ? block : block.subarray(0, bytes - sent);
    if (!client.write(piece)) await once(client, "drain");
  }
  await receivedAll;
  process.stdout.write(`${(performance.now() - start) / 1000}\n`);
  process.exit(0);
}

main(Number(process.argv[2])).catch((error: unknown) => {
  process.stderr.write(`tcp-pair-peer: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
