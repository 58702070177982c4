// coordinator/nats/: a NATS server for `launch` when none is given.
export { EmbeddedNatsServer, type EmbeddedNatsServerOptions } from "./embedded-server.js";
export {
  findNatsServer,
  startNatsServerProcess,
  NatsServerStartError,
  type NatsServerProcess,
} from "./server-process.js";
