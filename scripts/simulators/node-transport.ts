/**
 * Host-side Transport over a TCP socket (node:net), and the real Clock.
 * Bytes cross as latin1 so one char = one byte, as on the board.
 */
import net from "node:net";
import type { Clock, CommonCloseReason, Transport, TransportHandler } from "../../src/transport";

/**
 * Why a host socket ended: "closed" (the socket closed), "ended" (the peer's FIN),
 * Node's error code ("ECONNREFUSED", "ECONNRESET", ...), "error" (an error without one).
 */
export type NodeCloseReason = CommonCloseReason | "ended" | "error" | `E${string}`;
declare module "../../src/transport" {
  interface LinkCloseReasons {
    node: NodeCloseReason;
  }
}

export class NodeTransport implements Transport {
  /** The current socket (tests may destroy() it to cut the link abruptly). */
  socket: net.Socket | null = null;

  /**
   * maxQueue: bytes the socket may hold unsent before the link is closed instead.
   * lingerMs: how long close() waits for the peer to close before destroying.
   */
  constructor(private maxQueue = 1 << 20, private lingerMs = 300) {}

  open(host: string, port: number, h: TransportHandler): void {
    const s = net.connect({ host, port });
    this.socket = s;
    s.setNoDelay(true);
    let done = false;
    const end = (reason: NodeCloseReason) => {
      if (done) return;
      done = true;
      if (this.socket == s) this.socket = null;
      s.destroy();
      h.onClose(reason);
    };
    s.on("connect", () => h.onOpen());
    s.on("data", (d: Buffer) => { if (!done) h.onData(d.toString("latin1")); });
    s.on("error", (e: NodeJS.ErrnoException) => end((e.code as `E${string}`) || "error"));
    s.on("end", () => end("ended"));
    s.on("close", () => end("closed"));
  }

  write(bytes: string): void {
    const s = this.socket;
    if (!s || s.destroyed) return;
    s.write(Buffer.from(bytes, "latin1"));
    if (s.writableLength > this.maxQueue) s.destroy();
  }

  /**
   * Ends the connection gracefully (what was written, e.g. DISCONNECT, is sent first,
   * then FIN); if the peer has not closed its side within lingerMs, destroys it.
   * onClose follows either way.
   */
  close(): void {
    const s = this.socket;
    if (!s || s.destroyed) return;
    s.end();
    setTimeout(() => s.destroy(), this.lingerMs).unref();
  }
}

/** Wall-clock time for the host: monotonic milliseconds and Node's timers. */
export const realClock: Clock = {
  now: () => performance.now(),
  setTimeout: (fn: () => void, ms: number) => setTimeout(fn, ms),
  clearTimeout: (h: unknown) => clearTimeout(h as ReturnType<typeof setTimeout>),
};
