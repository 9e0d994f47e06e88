/**
 * The contract between the MQTT session and whatever carries its bytes:
 * a Node socket on the host, an AT modem socket on the board.
 *
 * Bytes travel as "byte strings": one character per byte, char codes 0..255.
 * Espruino's Serial and its string handling work on these natively and they
 * cost far fewer memory blocks than arrays, so every layer uses them.
 */
export type Bytes = string;

/**
 * Why a link ended, as TransportHandler.onClose reports it: short, never a secret.
 * A typed list, so that a misspelt reason fails the type check. The reasons every
 * transport may give are the `common` entry below; each transport adds its own
 * as one more entry of LinkCloseReasons, from its own file, by declaration merging:
 *
 *   declare module "../transport" {
 *     interface LinkCloseReasons { esp8266: Esp8266CloseReason }
 *   }
 *
 * (src/modem/esp8266.ts, src/modem/sim800.ts; the host socket in
 * scripts/simulators/node-transport.ts), so this contract still imports nothing.
 * Types only: nothing of this reaches the built script.
 */
export interface LinkCloseReasons {
  common: CommonCloseReason;
}
/** Any transport's reason: the union of every entry of LinkCloseReasons. */
export type LinkCloseReason = LinkCloseReasons[keyof LinkCloseReasons];
/**
 * "closed": close() was asked for (or a new open() ended the one running);
 * "overflow": write() found the bounded queue full; "CLOSED": the peer closed
 * the link (the modems' own word for it).
 */
export type CommonCloseReason = "closed" | "overflow" | "CLOSED";

export interface TransportHandler {
  /** The connection is up; write() may be called from now on. */
  onOpen(): void;
  /** Bytes arrived, in chunks of any size. */
  onData(bytes: Bytes): void;
  /**
   * The connection is gone or could not be made. Called exactly once for each
   * open(), including after close() was asked for. `reason` is short and
   * never contains a secret (LinkCloseReason above).
   */
  onClose(reason: LinkCloseReason): void;
}

export interface Transport {
  /** Starts connecting; the outcome arrives through the handler. */
  open(host: string, port: number, handler: TransportHandler): void;
  /**
   * Queues bytes for sending. A transport keeps a bounded queue: when it cannot
   * take more, it closes the connection (onClose) rather than grow memory.
   */
  write(bytes: Bytes): void;
  /** Ends the connection; onClose follows unless it was already reported. */
  close(): void;
}

/**
 * Time, injected so that keep-alive, time-outs and back-off run on a fake clock
 * in tests. On Espruino: now() = getTime() * 1000 and the global timers.
 */
export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Returns a truthy handle. */
  setTimeout(fn: () => void, ms: number): unknown;
  /**
   * Only for a timer that has not fired yet: on Espruino, clearing a fired id
   * throws, and ids are reused, so a stale id could cancel someone else's timer.
   * Every user forgets a handle once its timer has run.
   */
  clearTimeout(handle: unknown): void;
}
