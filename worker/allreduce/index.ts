// worker/allreduce/: summing a buffer over all ranks — the ring algorithm and its transports.
export { RingAllReduce, DEFAULT_BUCKET_BYTES, type RingAllReduceOptions } from "./ring.js";
export type { RingTransport } from "./transport.js";
export { createNatsRingTransport } from "./nats-transport.js";
export {
  listenWsRing,
  WS_MAX_PAYLOAD_BYTES,
  WS_CONNECT_TIMEOUT_MS,
  type WsRingListener,
  type WsRingOptions,
  type WsConnectOptions,
} from "./ws-transport.js";
export { RingError } from "./errors.js";
export { packRingTag, unpackRingTag, describeRingTag, MAX_WORLD_SIZE, type RingPhase } from "./tag.js";
export { CHUNK_OVERHEAD_BYTES, floatsPerChunk } from "./layout.js";
export { LinkEvents } from "./link-events.js";
