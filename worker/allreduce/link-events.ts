// What a transport hands to its one listener: messages and a link failure, held until a handler is set so
// nothing that arrives between connecting and wiring up the ring is lost.
import type { RingMessage } from "./transport.js";

export class LinkEvents {
  private held: RingMessage[] = [];
  private messageHandler: ((message: RingMessage) => void) | undefined;
  private errorHandler: ((error: Error) => void) | undefined;
  private failure: Error | undefined;

  message(message: RingMessage): void {
    if (this.messageHandler === undefined) this.held.push(message);
    else this.messageHandler(message);
  }

  /** Reports the first failure only: one broken link is one event. */
  error(error: Error): void {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.errorHandler?.(error);
  }

  onMessage(handler: (message: RingMessage) => void): void {
    this.messageHandler = handler;
    const held = this.held;
    this.held = [];
    for (const message of held) handler(message);
  }

  onError(handler: (error: Error) => void): void {
    this.errorHandler = handler;
    if (this.failure !== undefined) handler(this.failure);
  }
}
