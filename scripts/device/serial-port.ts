/**
 * Host side: the serial ports of this machine, for `npm run flash`.
 *
 * - listSerialPorts(): the serial devices a board can be on (Linux: /dev/ttyACM*,
 *   /dev/ttyUSB*, /dev/ttyAMA*, /dev/rfcomm*, /dev/serial0|1 and the stable names in
 *   /dev/serial/by-id/; macOS: /dev/cu.*; Windows: the COM ports serialport lists).
 * - checkPort(): a port given on the command line exists and is a character device,
 *   checked before anything is opened or sent.
 * - openSerial(): opens a port with the `serialport` package (the serial layer the
 *   `espruino` tool and Espruino's native IDE use), raw, 8N1, honouring the board's
 *   XON/XOFF, with an exclusive lock so a second program cannot talk to the board at
 *   the same time. Open errors become one sentence that says what to do.
 */
import { lstatSync, readdirSync, readlinkSync, statSync } from "node:fs";
import path from "node:path";

export interface PortInfo {
  path: string;
  /** Where a /dev/serial/by-id name points, or a description. */
  note?: string;
}

/** Device names that are serial ports a board can be on (ttyS* are left out: Linux makes dozens that are not there). */
const LINUX_NAMES = /^(ttyACM\d+|ttyUSB\d+|ttyAMA\d+|rfcomm\d+|serial\d)$/;
const MAC_NAMES = /^cu\.(usbmodem|usbserial|SLAB_USBtoUART|wchusbserial).*/;

function entries(dir: string): string[] {
  try {
    return readdirSync(dir).sort((a, b) => a.localeCompare(b, "en", { numeric: true }));
  } catch {
    return [];
  }
}

/**
 * The serial ports present, by-id names first (they name the device: "usb-Espruino.com_Espruino_Pico_…").
 * `dev` is the device directory (a test passes a stand-in).
 */
export async function listSerialPorts(opts: { dev?: string; platform?: NodeJS.Platform } = {}): Promise<PortInfo[]> {
  const platform = opts.platform ?? process.platform;
  const dev = opts.dev ?? "/dev";
  if (platform === "win32") {
    const { SerialPort } = await import("serialport");
    return (await SerialPort.list()).map((p) => ({ path: p.path, note: p.manufacturer }));
  }
  const out: PortInfo[] = [];
  const seen = new Set<string>();
  if (platform === "linux") {
    const byId = path.join(dev, "serial", "by-id");
    for (const name of entries(byId)) {
      const p = path.join(byId, name);
      let target: string | undefined;
      try {
        target = path.resolve(byId, readlinkSync(p));
      } catch {
        /* not a link */
      }
      out.push({ path: p, note: target });
      if (target) seen.add(target);
    }
  }
  const names = platform === "linux" ? LINUX_NAMES : MAC_NAMES;
  for (const name of entries(dev)) {
    if (!names.test(name)) continue;
    const p = path.join(dev, name);
    if (seen.has(p)) continue;
    let note: string | undefined;
    try {
      if (lstatSync(p).isSymbolicLink()) note = path.resolve(dev, readlinkSync(p));
    } catch {
      continue;
    }
    out.push({ path: p, note });
  }
  return out;
}

/** "/dev/ttyACM0, /dev/serial/by-id/usb-… (→ /dev/ttyACM1)" or "" for none. */
export function formatPorts(ports: PortInfo[]): string {
  return ports.map((p) => (p.note ? `${p.path} (${p.note.startsWith("/") ? "→ " : ""}${p.note})` : p.path)).join(", ");
}

/** Why `port` cannot be a serial port here (missing, not a device), or undefined when it looks like one. */
export function checkPort(port: string): string | undefined {
  if (process.platform === "win32") return undefined; // COM ports are names, not files
  let st;
  try {
    st = statSync(port);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return `no serial port ${port}`;
    if (code === "EACCES") return `${port} cannot be reached (permission denied on a directory in its path)`;
    return `${port}: ${(e as Error).message}`;
  }
  if (!st.isCharacterDevice()) return `${port} is not a serial device (it is a ${st.isDirectory() ? "directory" : "regular file"})`;
  return undefined;
}

/** The one-line explanation of a failure to open `port`, from serialport's error message. */
export function explainOpenError(message: string, port: string): string {
  const m = message.replace(/^Error:?\s*/, "");
  if (/Cannot lock port|Resource temporarily unavailable|EBUSY|Device or resource busy/i.test(m)) {
    return `${port} is busy: another program has it open (the Espruino Web IDE, the espruino tool, another npm run flash, screen, minicom); close it and flash again`;
  }
  if (/Permission denied|EACCES|Access denied/i.test(m)) {
    return `no permission to open ${port}: add yourself to its group (on Debian and Ubuntu: sudo usermod -aG dialout $USER, then log in again)`;
  }
  if (/No such file or directory|ENOENT|File not found/i.test(m)) {
    return `no serial port ${port} (it went away: is the board still plugged in?)`;
  }
  if (/Inappropriate ioctl|ENOTTY|not a typewriter/i.test(m)) {
    return `${port} is not a serial port (it does not take serial settings)`;
  }
  return `cannot open ${port}: ${m}`;
}

/** A byte link to the board's console: latin1 strings in and out. */
export interface Link {
  write(data: string): void;
  /** Every chunk received; one listener. */
  onData(cb: (data: string) => void): void;
  /** Called once if the port goes away (board unplugged or reset over USB). */
  onClose(cb: () => void): void;
  /** Ends the session: resolves once the port is closed. */
  close(): Promise<void>;
}

/** Opens `port` at `baud`; rejects with explainOpenError's sentence. */
export async function openSerial(port: string, baud: number): Promise<Link> {
  let SerialPort: typeof import("serialport").SerialPort;
  try {
    ({ SerialPort } = await import("serialport"));
  } catch (e) {
    throw new Error(`the serialport library does not load on this machine (${(e as Error).message.split("\n")[0]}): run npm install again`);
  }
  return new Promise<Link>((resolve, reject) => {
    const sp = new SerialPort({ path: port, baudRate: baud, autoOpen: false, lock: true, xon: true, xoff: false });
    sp.open((err) => {
      if (err) return reject(new Error(explainOpenError(err.message, port)));
      let closed = false;
      let onClose = () => {};
      sp.on("close", () => {
        if (!closed) onClose();
        closed = true;
      });
      sp.on("error", () => {}); // a write after unplugging: reported by the protocol's time-out
      resolve({
        write: (data) => {
          if (!closed) sp.write(Buffer.from(data, "latin1"));
        },
        onData: (cb) => sp.on("data", (d: Buffer) => cb(d.toString("latin1"))),
        onClose: (cb) => { onClose = cb; },
        close: () =>
          new Promise<void>((done) => {
            if (closed || !sp.isOpen) return done();
            closed = true;
            // Let what was written go out before closing; never wait longer than two seconds in all.
            let finished = false;
            const finish = () => {
              if (!finished) {
                finished = true;
                done();
              }
            };
            const giveUp = setTimeout(finish, 2000);
            let shutting = false;
            const shut = () => {
              if (shutting) return;
              shutting = true;
              sp.close(() => {
                clearTimeout(giveUp);
                finish();
              });
            };
            const drained = setTimeout(shut, 1000);
            sp.drain(() => {
              clearTimeout(drained);
              shut();
            });
          }),
      });
    });
  });
}
