/**
 * CONTRACT (stub): the AT engine's public surface. The AT-engine work fills in
 * the implementation; drivers in src/modem/ code against exactly this surface.
 */
import type { Bytes, Clock } from "../session/transport";

/** The modem's UART as the engine needs it: Espruino's SerialN fits. */
export interface Uart {
  write(data: string): void;
}

export interface AtReply {
  /**
   * The line that ended the command: "OK", "ERROR", "+CME ERROR: 10",
   * "SEND OK", "SEND FAIL", one of the command's own `finals`, or "TIMEOUT"
   * when nothing final came in time.
   */
  final: string;
  /** Intermediate lines received while the command was in flight (no echo). */
  lines: string[];
}

export interface AtCommand {
  /** The text to send without "\r\n"; "" sends nothing and only waits (for "ready" and the like). */
  cmd: string;
  /** Milliseconds before the command ends with final "TIMEOUT". */
  timeout: number;
  /**
   * Extra lines (matched as prefixes) that end this command besides the
   * defaults. With `okNotFinal`, "OK" is an intermediate line (SIM800's
   * CIPSTART answers "OK" and then "CONNECT OK").
   */
  finals?: string[];
  okNotFinal?: boolean;
  /** Bytes to write once the ">" prompt arrives (CIPSEND); never before it. */
  data?: Bytes;
  /** The command text holds a secret (password, APN credentials): never log it. */
  secret?: boolean;
  done(reply: AtReply): void;
}

export declare class AtEngine {
  constructor(uart: Uart, clock: Clock, log?: (line: string) => void);
  /** Feed every chunk the UART delivers, of any size. Never throws. */
  feed(chunk: string): void;
  /** Queues a command; one is in flight at a time. */
  send(command: AtCommand): void;
  /** Unsolicited lines (URCs) and lines that belong to no command. */
  onUrc: (line: string) => void;
  /** Payload bytes of each "+IPD,<len>:" frame, exactly <len> bytes. */
  onData: (bytes: Bytes) => void;
  /** Ends the command in flight and every queued one with final "ABORTED" and clears the buffers. */
  abort(): void;
}
