// The ws data plane's frames as they cross the wire: a raw TCP server completes the WebSocket handshake
// itself and reads the first data frame the ring's client sends. It is masked, as RFC 6455 requires of a
// client, with a mask of zeros, so neither end spends a pass over the gradient XOR-ing it; the payload
// is the message's bytes unchanged.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { test } from "node:test";
import { WebSocket } from "ws";
import { listenWsRing } from "../../worker/allreduce/ws-transport.js";

const WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** A server that accepts one WebSocket upgrade and resolves with the first frame's header and payload. */
function rawFrameServer(): {
  server: Server;
  frame: Promise<{ masked: boolean; mask: Buffer; payload: Buffer }>;
} {
  const server = createServer();
  const frame = new Promise<{ masked: boolean; mask: Buffer; payload: Buffer }>((resolve, reject) => {
    server.on("upgrade", (request, socket: Socket) => {
      const key = String(request.headers["sec-websocket-key"]);
      const accept = createHash("sha1")
        .update(key + WEBSOCKET_GUID)
        .digest("base64");
      socket.write(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
          `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
      );
      let buffered = Buffer.alloc(0);
      socket.on("data", (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        if (buffered.length < 2) return;
        const masked = ((buffered[1] ?? 0) & 0x80) !== 0;
        let length = (buffered[1] ?? 0) & 0x7f;
        let at = 2;
        if (length === 126) [length, at] = [buffered.readUInt16BE(2), 4];
        else if (length === 127) [length, at] = [Number(buffered.readBigUInt64BE(2)), 10];
        const mask = masked ? buffered.subarray(at, at + 4) : Buffer.alloc(0);
        const start = at + mask.length;
        if (buffered.length < start + length) return;
        resolve({
          masked,
          mask: Buffer.from(mask),
          payload: Buffer.from(buffered.subarray(start, start + length)),
        });
        socket.destroy();
      });
      socket.on("error", reject);
    });
  });
  return { server, frame };
}

test(
  "ws data plane - frames go out masked with zeros, their payload the message's bytes unchanged",
  { timeout: 30_000 },
  async (t) => {
    const { server, frame } = rawFrameServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    t.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    // Rank 0 of 2: its client connects to "rank 1", the raw server; a plain client stands in for rank 1's
    // link back, so that connect() completes.
    const listener = await listenWsRing("127.0.0.1", 0);
    t.after(() => listener.close());
    const joined = listener.connect(0, 2, `ws://127.0.0.1:${port}`, { connectTimeoutMs: 5_000 });
    const previous = new WebSocket(`${listener.address}/ring?from=1`);
    t.after(() => previous.terminate());
    const transport = await joined;
    const message = Uint8Array.from({ length: 300 }, (_, i) => (i * 37 + 11) % 256);
    // The first frame on the wire is the envelope (the raw server never answers the close).
    void transport.send({ envelope: message, payload: new Uint8Array(8) }).catch(() => undefined);
    const { masked, mask, payload } = await frame;
    assert.equal(masked, true, "a client's frames carry a mask (RFC 6455)");
    assert.deepEqual([...mask], [0, 0, 0, 0]);
    assert.deepEqual(new Uint8Array(payload), message);
  },
);
