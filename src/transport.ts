/**
 * The contract between the MQTT session and whatever carries its bytes:
 * a Node socket on the host, an AT modem socket on the board.
 *
 * Bytes travel as "byte strings": one character per byte, char codes 0..255.
 * Espruino's Serial and its string handling work on these natively and they
 * cost far fewer memory blocks than arrays, so every layer uses them.
 */
export type Bytes = string;

export interface TransportHandler {
  /** The connection is up; write() may be called from now on. */
  onOpen(): void;
  /** Bytes arrived, in chunks of any size. */
  onData(bytes: Bytes): void;
  /**
   * The connection is gone or could not be made. Called exactly once for each
   * open(), including after close() was asked for. `reason` is short and
   * never contains a secret.
   */
  onClose(reason: string): void;
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
