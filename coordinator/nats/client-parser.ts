// Streaming parser for what a NATS client sends the embedded broker (CONNECT, PING, PONG, SUB, UNSUB, PUB,
// HPUB). TCP delivers the stream cut anywhere, so bytes are buffered until a whole control line, and for
// PUB/HPUB the whole payload plus its CRLF, has arrived. Any violation is fatal for that connection.

const LF = 0x0a;
const CR = 0x0d;

/** nats-server's limit on one control line; also bounds what a client without newlines can make us hold. */
export const MAX_CONTROL_LINE_BYTES = 4096;

/** The CONNECT fields the broker acts on; absent fields keep the connection's current value. */
export interface ConnectFields {
  readonly verbose?: boolean;
  readonly echo?: boolean;
  readonly headers?: boolean;
  readonly noResponders?: boolean;
}

export type ClientOp =
  | { readonly kind: "connect"; readonly fields: ConnectFields }
  | { readonly kind: "ping" }
  | { readonly kind: "pong" }
  | {
      readonly kind: "sub";
      readonly subject: string;
      readonly queue: string | undefined;
      readonly sid: string;
    }
  | { readonly kind: "unsub"; readonly sid: string; readonly max: number | undefined }
  | {
      readonly kind: "pub";
      readonly subject: string;
      readonly reply: string | undefined;
      /** Bytes of `message` that are the header block (HPUB); undefined for PUB. */
      readonly headerBytes: number | undefined;
      /** Header block followed by the payload, exactly as the client sent them. */
      readonly message: Buffer;
    };

type PubOp = Extract<ClientOp, { kind: "pub" }>;

/** A PUB/HPUB control line whose payload is still to come. */
interface PendingPub {
  readonly kind: "pending-pub";
  readonly op: Omit<PubOp, "message">;
  readonly sizeBytes: number;
}

/** A protocol violation; `reply` is the text nats-server sends in `-ERR '<reply>'` before closing. */
export class ClientProtocolViolation extends Error {
  override readonly name = "ClientProtocolViolation";
  constructor(
    readonly reply: string,
    readonly detail: string,
  ) {
    super(`${reply}: ${detail}`);
  }
}

const unknownOperation = (detail: string) =>
  new ClientProtocolViolation("Unknown Protocol Operation", detail);

export class ClientParser {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  /** A PUB/HPUB whose control line is parsed and whose payload has not fully arrived. */
  private pending: PendingPub | undefined;

  constructor(private readonly maxPayloadBytes: number) {}

  /** Appends bytes from the socket and yields each operation they complete; throws ClientProtocolViolation. */
  *push(chunk: Buffer): Generator<ClientOp> {
    this.chunks.push(chunk);
    this.bufferedBytes += chunk.length;
    for (;;) {
      if (this.pending !== undefined) {
        const { op, sizeBytes } = this.pending;
        if (this.bufferedBytes < sizeBytes + 2) return;
        const bytes = this.take(sizeBytes + 2);
        if (bytes[sizeBytes] !== CR || bytes[sizeBytes + 1] !== LF)
          throw unknownOperation("payload not followed by CRLF (size mismatch)");
        this.pending = undefined;
        yield { ...op, message: bytes.subarray(0, sizeBytes) };
        continue;
      }
      const lineEnd = this.indexOfLineFeed();
      if (lineEnd < 0 || lineEnd > MAX_CONTROL_LINE_BYTES) {
        if (lineEnd < 0 && this.bufferedBytes <= MAX_CONTROL_LINE_BYTES) return;
        throw new ClientProtocolViolation(
          "maximum control line exceeded",
          `over ${MAX_CONTROL_LINE_BYTES} bytes`,
        );
      }
      // latin1 maps bytes 1:1 to chars, so subjects are echoed back byte for byte whatever their encoding.
      const line = this.take(lineEnd + 1)
        .toString("latin1")
        .replace(/\r?\n$/, "");
      const op = this.parseLine(line);
      if (op.kind === "pending-pub") this.pending = op;
      else yield op;
    }
  }

  private parseLine(line: string): ClientOp | PendingPub {
    const text = line.trim();
    const name = /^\S+/.exec(text)?.[0] ?? "";
    const rest = text.slice(name.length).trim();
    const args = rest === "" ? [] : rest.split(/[ \t]+/);
    switch (name.toUpperCase()) {
      case "CONNECT":
        return { kind: "connect", fields: parseConnect(rest) };
      case "PING":
        return { kind: "ping" };
      case "PONG":
        return { kind: "pong" };
      case "SUB": {
        const [subject, queueOrSid, sid] = args;
        if (subject === undefined || queueOrSid === undefined || args.length > 3)
          throw unknownOperation(`SUB needs subject [queue] sid: ${line}`);
        return sid === undefined
          ? { kind: "sub", subject, queue: undefined, sid: queueOrSid }
          : { kind: "sub", subject, queue: queueOrSid, sid };
      }
      case "UNSUB": {
        const [sid, max] = args;
        if (sid === undefined || args.length > 2) throw unknownOperation(`UNSUB needs sid [max]: ${line}`);
        return { kind: "unsub", sid, max: max === undefined ? undefined : parseSize(max, line) };
      }
      case "PUB": {
        if (args.length < 2 || args.length > 3)
          throw unknownOperation(`PUB needs subject [reply] size: ${line}`);
        const sizeBytes = parseSize(args[args.length - 1], line);
        return this.pendingPub(args[0], args.length === 3 ? args[1] : undefined, undefined, sizeBytes);
      }
      case "HPUB": {
        if (args.length < 3 || args.length > 4)
          throw unknownOperation(`HPUB needs subject [reply] header-size total-size: ${line}`);
        const headerBytes = parseSize(args[args.length - 2], line);
        const sizeBytes = parseSize(args[args.length - 1], line);
        if (headerBytes > sizeBytes) throw unknownOperation(`HPUB header size over total size: ${line}`);
        return this.pendingPub(args[0], args.length === 4 ? args[1] : undefined, headerBytes, sizeBytes);
      }
      default:
        throw unknownOperation(`unknown operation: ${line.slice(0, 64)}`);
    }
  }

  private pendingPub(
    subject: string | undefined,
    reply: string | undefined,
    headerBytes: number | undefined,
    sizeBytes: number,
  ): PendingPub {
    if (subject === undefined) throw unknownOperation("publish without subject");
    if (sizeBytes > this.maxPayloadBytes)
      throw new ClientProtocolViolation(
        "Maximum Payload Violation",
        `${sizeBytes} > ${this.maxPayloadBytes} bytes`,
      );
    return { kind: "pending-pub", op: { kind: "pub", subject, reply, headerBytes }, sizeBytes };
  }

  private indexOfLineFeed(): number {
    let offset = 0;
    for (const chunk of this.chunks) {
      const at = chunk.indexOf(LF);
      if (at >= 0) return offset + at;
      offset += chunk.length;
    }
    return -1;
  }

  /** Removes and returns the first `n` buffered bytes; copies only when they span chunks. */
  private take(n: number): Buffer {
    let first = this.chunks[0];
    if (first === undefined || first.length < n) {
      first = Buffer.concat(this.chunks);
      this.chunks = [first];
    }
    this.chunks[0] = first.subarray(n);
    if (first.length === n) this.chunks.shift();
    this.bufferedBytes -= n;
    return first.subarray(0, n);
  }
}

function parseSize(text: string | undefined, line: string): number {
  if (text === undefined || !/^\d{1,15}$/.test(text)) throw unknownOperation(`bad size in: ${line}`);
  return Number(text);
}

function parseConnect(json: string): ConnectFields {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw unknownOperation("CONNECT argument is not JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw unknownOperation("CONNECT argument is not a JSON object");
  const record = value as Record<string, unknown>;
  const flag = (key: string): boolean | undefined => {
    const field = record[key];
    if (field === undefined || field === null) return undefined;
    if (typeof field !== "boolean") throw unknownOperation(`CONNECT ${key} is not a boolean`);
    return field;
  };
  return {
    verbose: flag("verbose"),
    echo: flag("echo"),
    headers: flag("headers"),
    noResponders: flag("no_responders"),
  };
}
