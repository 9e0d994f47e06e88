/**
 * The modem fault table (issue 7): one row per fault of a modem — how it is injected
 * (a knob of the modem simulator that every dialect shares, scripts/simulators/modem-sim/core.ts,
 * or one modem's own option) — and, per modem kind, what its driver must do: the one
 * onClose reason (typed by the driver's own union, so a misspelt reason fails tsc), the
 * state report that goes with it (the driver's log line), how the next open goes (the
 * retry), and what must not be lost. test/modem/modem-faults.test.ts plays every row for
 * every modem that has a cell in it. Every row names every modem: where a fault does not
 * apply to a module (a WiFi join on a cellular module), its cell is `notApplicable(why)`,
 * so a new column cannot skip a row silently (tsc asks for the entry).
 *
 * Adding a modem: its entry in `Modems` (its rig, the rig's options, its driver's close
 * reasons), its kit in MODEM_KITS (how its rig proves a link works, how it makes the
 * driver send), and its cell in each row: the cell where it applies (its knobs and its
 * reasons), notApplicable(why) where it does not.
 *
 * runModemFaultRow(row, kit, cell, world) plays one cell on a fresh rig:
 * 1. the fault, by `row.when`:
 *    "bring-up"  injected before an open() (or `startedMs` after it started); that open
 *                ends with `reason` (null: it succeeds all the same; "at most one failure":
 *                it may fail, with any reason, and then the next one must not);
 *    "reopen"    on a module already up: a link is made and closed ("closed"), then the
 *                fault, then the next open ends with `reason`;
 *    "link"      on a working link (MQTT connected, data both ways); `trigger` makes the
 *                driver send (one AT+CIPSEND) or the session close; the socket ends with
 *                `reason` within `closesWithinMs` (0: at once, synchronously);
 *    "kept"      on a working link, which carries data after it (`repeat` times);
 * 2. the state report "<reported> <reason>" is among the driver's reports; `struck` holds;
 * 3. `heal` (the row's, then the cell's), then the retry (`retry`, else the kit's): the
 *    next open at once, or eventually (a few tries), or only after at least one failure,
 *    or none (the fault stays); data flows over it; then `check` (with the commands of
 *    the open that worked, and all since the retry began);
 * 4. every socket saw at most one onClose; the rig's own checks (no data before a prompt,
 *    no secret in a log line).
 */
import { expect } from "vitest";
import type mqtt from "mqtt";
import type { Esp8266CloseReason } from "../../src/modem/esp8266";
import { Sim800, type Sim800CloseReason } from "../../src/modem/sim800";
import { Sim7600, type Sim7600CloseReason } from "../../src/modem/sim7600";
import type { ModemSimCore } from "../../scripts/simulators/modem-sim/core";
import { Rig as EspRig, PASSWORD, type RigOptions as EspRigOptions } from "./esp8266-rig";
import { Sim800Rig, type Sim800RigOptions } from "./sim800-rig";
import { Sim7600Rig, type Sim7600RigOptions } from "./sim7600-rig";
import { Socket, sleep, until, type Broker } from "./modem-rig";

/** Each modem kind the table covers: its rig, the rig's options, its driver's close reasons. */
export interface Modems {
  esp8266: { rig: EspRig; options: EspRigOptions; reason: Esp8266CloseReason };
  sim800: { rig: Sim800Rig; options: Sim800RigOptions; reason: Sim800CloseReason };
  sim7600: { rig: Sim7600Rig; options: Sim7600RigOptions; reason: Sim7600CloseReason };
}
export type TableModem = keyof Modems;

/**
 * What every row shares: a broker, a TLS port in front of it (./tls.ts startTlsFront:
 * where a rig whose driver asks for TLS connects), and a phone subscribed to f/+/out
 * (what it got in `got`).
 */
export interface FaultWorld {
  broker: Broker;
  tlsPort: number;
  phone: mqtt.MqttClient;
  got: { topic: string; payload: string }[];
}

/** How the next open goes after the fault: see the file comment. */
export type Retry = "at once" | "eventually" | "after failures" | "none";

/** A bring-up whose open may fail once, with any reason (noise can end one command). */
export const AT_MOST_ONE_FAILURE = "at most one failure";

/** What one modem's driver must do about one fault (one cell of the table). */
export interface FaultCell<K extends TableModem> {
  /** This modem's knobs for the row: simulator and driver options, the control pin, the clock's speed-up. */
  rig?: Modems[K]["options"];
  /** This modem's part of the injection, after the row's (the socket: the one the fault strikes, or the open under way). */
  inject?: (r: Modems[K]["rig"], s: Socket, world: FaultWorld) => void | Promise<void>;
  /** The one onClose reason, exactly; null: the open succeeds, or the link is kept. */
  reason: Modems[K]["reason"] | null | typeof AT_MOST_ONE_FAILURE;
  /** The state the driver reports with the reason ("failed <reason>"; "joined <reason>": a SIM800 whose bearer outlives the socket). */
  reported?: "failed" | "joined";
  /** Real ms for the close (or for the open to end, bring-up); 0: at once. Default 5000 (bring-up: 8000). */
  closesWithinMs?: number;
  /** Checks once the fault struck (the open ended, or the socket closed), before any heal or retry. */
  struck?: (r: Modems[K]["rig"], s: Socket) => void;
  /** Default: the kit's (each modem's tests retried as they always had). */
  retry?: Retry;
  /** Undoes this modem's knob before the retry. */
  heal?: (r: Modems[K]["rig"]) => void;
  /**
   * Checks of this modem at the end: after the retry and the data over it, with the
   * commands of the open that worked and all those since the retry began (none without a retry).
   */
  check?: (r: Modems[K]["rig"], opened: string[], s: Socket | undefined, sinceRetry: string[]) => void;
}

export interface ModemFaultRow {
  name: string;
  when: "bring-up" | "reopen" | "link" | "kept";
  /** The injection through a knob every simulator dialect shares (a cell's own `inject` runs after it). */
  inject?: (sim: ModemSimCore) => void;
  /** bring-up: inject this many ms after the open started (0: as soon as open() returned, its first command gone out); absent: before it. */
  startedMs?: number;
  /** link: what makes the fault show: the driver sends (one AT+CIPSEND), or the session closes (a corrupt stream). */
  trigger?: "send" | "close";
  /** kept: inject, then prove the link, this many times (default 1). */
  repeat?: number;
  /** Undoes the row's knob before the retry. */
  heal?: (sim: ModemSimCore) => void;
  /** Every modem kind: its cell, or why the row does not apply to it. */
  cells: { [K in TableModem]: FaultCell<K> | NotApplicable };
}

/** A row's entry for a modem it does not apply to, with the reason. */
export interface NotApplicable {
  notApplicable: string;
}
export const notApplicable = (why: string): NotApplicable => ({ notApplicable: why });
const applies = <K extends TableModem>(cell: FaultCell<K> | NotApplicable): cell is FaultCell<K> => !("notApplicable" in cell);

/** What the table needs of one modem kind beyond its cells. */
export interface ModemKit<K extends TableModem> {
  kind: K;
  rig(world: FaultWorld, o?: Modems[K]["options"]): Modems[K]["rig"];
  /** How a link is made, and the next open retried unless a cell says otherwise. */
  retry: Retry;
  /** Proves the link carries MQTT (sending CONNECT first when nothing came yet). */
  flows(r: Modems[K]["rig"], s: Socket, world: FaultWorld): Promise<void>;
  /** Makes the driver send now: one AT+CIPSEND. */
  send(r: Modems[K]["rig"], s: Socket): void;
  /** The rig's own checks after a row. */
  checkRig(r: Modems[K]["rig"]): void;
}

let ids = 0;
/** A fresh id for client ids and topics: rows share one broker and one phone. */
const nextId = () => "f" + ++ids;

/**
 * ESP8266: MQTT CONNECT (once per socket), SUBSCRIBE, and a publish each way with
 * AT-looking bytes, each arriving intact.
 */
async function espFlows(r: EspRig, s: Socket, world: FaultWorld): Promise<void> {
  const id = nextId();
  if (!s.rx) await r.mqttConnect(s, "c" + id);
  await r.subscribe(s, `f/${id}/in`);
  const up = `up ${id}\r\nOK\r\n+IPD,5:\r\nSEND FAIL\r\n`;
  r.publish(`f/${id}/out`, up);
  await until(() => world.got.some((m) => m.topic == `f/${id}/out`), 5000, "phone got " + id);
  expect(world.got.find((m) => m.topic == `f/${id}/out`)!.payload).toBe(up);
  const down = `down ${id}\r\n> \r\nCLOSED\r\nready\r\n\u0000\u00ff`;
  await world.phone.publishAsync(`f/${id}/in`, Buffer.from(down, "latin1"));
  await until(() => s.packets.some((p) => p.cmd == "publish" && p.topic == `f/${id}/in`), 5000, "device got " + id);
  const p = s.packets.find((p) => p.cmd == "publish" && p.topic == `f/${id}/in`) as unknown as { payload: Buffer };
  expect(p.payload.toString("latin1")).toBe(down);
  expect(s.closed).toBe(null);
}

export const MODEM_KITS: { [K in TableModem]: ModemKit<K> } = {
  esp8266: {
    kind: "esp8266",
    rig: (world, o) => new EspRig(world.broker, o),
    retry: "at once",
    flows: espFlows,
    send: (r) => r.publish(`f/${nextId()}/out`, "x"),
    checkRig(r) {
      expect(r.sim.violations, "sim saw data before the prompt").toEqual([]);
      expect(r.passwordLogged(PASSWORD), "log lines with the password").toEqual([]);
    },
  },
  sim800: {
    kind: "sim800",
    rig: (world, o) => new Sim800Rig(world.broker, o),
    retry: "eventually",
    // MQTT CONNECT (once per socket), then a PINGREQ answered by PINGRESP
    async flows(r, s) {
      if (!s.rx) await r.mqttConnect(s, "sim800-" + nextId());
      await r.ping(s);
    },
    send: (r) => r.modem.write("\xc0\x00"),
    checkRig(r) {
      // the APN credentials never reach a log line (the engine logs AT+CSTT=<hidden>)
      expect(r.credentialsLogged(), "log lines with the APN credentials").toEqual([]);
      expect(r.sim.violations, "sim saw data before the prompt").toEqual([]);
    },
  },
  sim7600: {
    kind: "sim7600",
    // a driver that asks for TLS reaches the TLS port in front of the broker
    rig: (world, o) => new Sim7600Rig(world.broker, o?.driver?.ssl ? { ...o, sim: { hostMap: () => ({ host: "127.0.0.1", port: world.tlsPort }), ...o.sim } } : o),
    retry: "eventually",
    // MQTT CONNECT (once per socket), then a PINGREQ answered by PINGRESP
    async flows(r, s) {
      if (!s.rx) await r.mqttConnect(s, "sim7600-" + nextId());
      await r.ping(s);
    },
    send: (r) => r.modem.write("\xc0\x00"),
    checkRig(r) {
      // the APN credentials never reach a log line (the engine logs AT+CGAUTH=<hidden>)
      expect(r.credentialsLogged(), "log lines with the APN credentials").toEqual([]);
      expect(r.sim.violations, "sim saw data before the prompt").toEqual([]);
    },
  },
};

/** The rows a modem's kit plays: each row with a cell for it. */
export function rowsFor<K extends TableModem>(kind: K): { row: ModemFaultRow; cell: FaultCell<K> }[] {
  return MODEM_FAULT_ROWS.flatMap((row) => {
    const cell = row.cells[kind] as FaultCell<K> | NotApplicable;
    return applies(cell) ? [{ row, cell }] : [];
  });
}

/** Plays one cell on a fresh rig (see the file comment). */
export async function runModemFaultRow<K extends TableModem>(row: ModemFaultRow, kit: ModemKit<K>, cell: FaultCell<K>, world: FaultWorld): Promise<void> {
  const r = kit.rig(world, cell.rig);
  const sockets: Socket[] = [];
  const track = (s: Socket) => (sockets.push(s), s);
  const inject = async (s: Socket) => {
    row.inject?.(r.sim);
    await cell.inject?.(r, s, world);
  };
  /** A working link: opened as the kit retries, data flowing. */
  const connected = async () => {
    const s = track(kit.retry == "at once" ? await r.open() : (await r.openEventually()).sock);
    await kit.flows(r, s, world);
    return s;
  };
  try {
    // the socket the fault struck, and the one it left working (if any)
    let struck: Socket;
    let working: Socket | undefined;
    if (row.when == "bring-up" || row.when == "reopen") {
      if (row.when == "reopen") {
        const up = await connected();
        r.modem.close();
        await until(() => up.closed !== null, 5000, "the first link to close");
        expect(up.closed).toBe("closed");
      }
      struck = track(new Socket());
      if (row.startedMs === undefined) await inject(struck);
      r.modem.open(r.host, 1883, struck);
      if (row.startedMs !== undefined) {
        if (row.startedMs) await sleep(row.startedMs);
        await inject(struck);
      }
      await until(() => struck.opened || struck.closed !== null, cell.closesWithinMs ?? 8000, "the open to end");
      if (cell.reason === null) {
        expect(struck.closed, "the open rides over the fault").toBe(null);
        working = struck;
      } else if (cell.reason === AT_MOST_ONE_FAILURE) {
        if (struck.opened) working = struck;
      } else {
        expect(struck.opened, "the open fails").toBe(false);
        expect(struck.closed, "the open's close reason").toBe(cell.reason);
      }
    } else {
      struck = await connected();
      if (row.when == "kept") {
        for (let i = 0; i < (row.repeat ?? 1); i++) {
          await inject(struck);
          await kit.flows(r, struck, world);
        }
        expect(struck.closed, "the link is kept").toBe(null);
        working = struck;
      } else {
        await inject(struck);
        if (row.trigger == "send") kit.send(r, struck);
        if (row.trigger == "close") r.modem.close();
        if (cell.closesWithinMs !== 0) await until(() => struck.closed !== null, cell.closesWithinMs ?? 5000, "the socket to close");
        expect(struck.closed, "the socket's close reason").toBe(cell.reason);
      }
    }
    if (cell.reported) expect(r.states, "the state reported with the reason").toContain(`${cell.reported} ${cell.reason}`);
    cell.struck?.(r, struck);

    if (working) {
      if (row.when != "kept") await kit.flows(r, working, world);
      cell.check?.(r, [], working, []);
    } else {
      row.heal?.(r.sim);
      cell.heal?.(r);
      const retry = cell.retry ?? kit.retry;
      if (retry == "none") cell.check?.(r, [], undefined, []);
      else {
        const since = r.sim.commands.length;
        let next: Socket;
        if (retry == "at once") next = await r.open();
        else {
          const { sock, failures } = await r.openEventually();
          next = sock;
          if (retry == "after failures") expect(failures.length, "failed opens before one worked").toBeGreaterThan(0);
        }
        track(next);
        const opened = r.sim.commands.slice(since);
        await kit.flows(r, next, world);
        cell.check?.(r, opened, next, r.sim.commands.slice(since));
      }
    }
    for (const s of sockets) expect(s.closes.length, "onClose calls for one open").toBeLessThanOrEqual(1);
    kit.checkRig(r);
  } finally {
    r.sim.close();
  }
}

/** MQTT PUBLISH packets the socket received whose payload is `payload`. */
const delivered = (s: Socket, payload: string) => s.packets.some((p) => p.cmd == "publish" && (p as unknown as { payload: Buffer }).payload.toString() == payload);

export const MODEM_FAULT_ROWS: ModemFaultRow[] = [
  // the link: refused, dropped, or an error on a send
  {
    name: "refused link: the open fails with a reason, the next one connects",
    when: "bring-up",
    inject: (sim) => (sim.fault.refuseLink = true),
    heal: (sim) => (sim.fault.refuseLink = false),
    cells: {
      esp8266: { reason: "connect ERROR", reported: "failed" },
      sim800: { reason: "CONNECT FAIL", reported: "joined" },
      // the network service goes down with the failed open: the next one starts from AT+NETCLOSE
      sim7600: { reason: "+CIPOPEN: 0,1", reported: "failed" },
    },
  },
  {
    name: "dropped link (CLOSED, +IPCLOSE): the socket ends once, reopening works",
    when: "link",
    inject: (sim) => sim.dropLink(),
    cells: {
      esp8266: { reason: "CLOSED", reported: "failed" },
      sim800: { reason: "CLOSED", reported: "joined", closesWithinMs: 3000 },
      // the peer closed (+IPCLOSE: 0,1): the network service stays open, the next open is AT+CIPOPEN at once
      sim7600: {
        reason: "+IPCLOSE: 0,1",
        reported: "joined",
        struck: (r) => expect(r.states.at(-1)).toBe("joined +IPCLOSE: 0,1"),
        check: (_r, opened) => expect(opened[0]).toMatch(/^AT\+CIPOPEN=0,/),
      },
    },
  },
  {
    name: "ERROR to AT+CIPSEND: the socket closes, reopening works",
    when: "link",
    inject: (sim) => (sim.fault.error = 1),
    trigger: "send",
    cells: {
      esp8266: { reason: "send ERROR", reported: "failed" },
      sim800: { reason: "ERROR", reported: "joined", closesWithinMs: 3000 },
      // AT+CIPCLOSE=0; the network service stays open
      sim7600: { reason: "ERROR", reported: "joined", check: (_r, opened) => expect(opened[0]).toMatch(/^AT\+CIPOPEN=0,/) },
    },
  },
  {
    name: "ERROR to the open (AT+CIPSTART, AT+CIPOPEN) on a module already up: that open fails, the next one works",
    when: "reopen",
    inject: (sim) => (sim.fault.error = 1),
    cells: {
      esp8266: { reason: "connect ERROR", reported: "failed" },
      // ERROR leaves the bearer in doubt: AT+CIPSHUT and a fresh attach next time
      sim800: { reason: "ERROR", reported: "failed" },
      // the failed AT+CIPOPEN takes the network service down: the next open starts from AT+NETCLOSE
      sim7600: { reason: "ERROR", reported: "failed", check: (_r, opened) => expect(opened).toContain("AT+NETCLOSE") },
    },
  },
  {
    name: "+CME ERROR to AT+CIPOPEN: the open fails with it, the next one works",
    when: "bring-up",
    cells: {
      esp8266: notApplicable("the LTE module's answer: the ESP8266 answers its AT+CIPSTART with ERROR (the row above)"),
      sim800: notApplicable("the LTE module's answer: the SIM800 answers its AT+CIPSTART with ERROR (the row above)"),
      sim7600: { inject: (r) => void (r.sim.openErrors = 1), reason: "+CME ERROR: 4", reported: "failed" },
    },
  },
  {
    name: "SEND FAIL: the socket closes, reopening works",
    when: "link",
    inject: (sim) => (sim.fault.sendFail = 1),
    trigger: "send",
    cells: {
      esp8266: { reason: "send SEND FAIL", reported: "failed" },
      sim800: { reason: "SEND FAIL", reported: "joined", closesWithinMs: 3000 },
      sim7600: notApplicable('no "SEND FAIL" in this family: a send that fails ends "+CIPSEND: 0,<n>,-1" or "+CIPERROR: <err>"'),
    },
  },
  {
    name: "busy p... to AT+CIPSEND: the send is retried with back-off and arrives once",
    when: "kept",
    cells: {
      esp8266: {
        reason: null,
        async inject(r, s, world) {
          const topic = `f/${nextId()}/out`;
          const before = r.sim.commands.filter((c) => c.startsWith("AT+CIPSEND")).length;
          r.sim.fault.busy = 3;
          r.publish(topic, "after busy");
          await until(() => world.got.some((m) => m.topic == topic), 5000, "phone got the message sent through busy");
          expect(world.got.filter((m) => m.topic == topic).map((m) => m.payload)).toEqual(["after busy"]);
          expect(s.closed).toBe(null);
          // the three refused CIPSENDs were answered by the core and never reached the dialect
          expect(r.sim.commands.filter((c) => c.startsWith("AT+CIPSEND")).length - before).toBe(1);
        },
      },
      sim800: notApplicable('"busy p..." is the ESP8266\'s answer while it is busy'),
      sim7600: notApplicable('"busy p..." is the ESP8266\'s answer while it is busy'),
    },
  },
  // the bring-up
  {
    name: "busy p... during the bring-up: that open fails, the next one works",
    when: "bring-up",
    inject: (sim) => (sim.fault.busy = 1), // eats ATE0
    cells: {
      esp8266: { rig: { hardReset: true }, reason: "ATE0 busy p...", reported: "failed" },
      sim800: notApplicable('"busy p..." is the ESP8266\'s answer while it is busy'),
      sim7600: notApplicable('"busy p..." is the ESP8266\'s answer while it is busy'),
    },
  },
  {
    name: "ERROR to the AT probe (noise while the module auto-bauds): the open rides over it",
    when: "bring-up",
    inject: (sim) => (sim.fault.error = 2),
    cells: {
      esp8266: notApplicable("the ESP8266's bring-up starts with AT+RST, not an AT probe"),
      sim800: { reason: null, closesWithinMs: 3000 },
      // an answer other than OK to the probe: probe again a second later
      sim7600: { reason: null, closesWithinMs: 3000 },
    },
  },
  {
    name: "ERROR to the first command after the reset or the probe: that open fails, the next one works",
    when: "bring-up",
    startedMs: 0, // the reset (ESP8266) or the AT probe (SIM800) already went out
    inject: (sim) => (sim.fault.error = 1),
    cells: {
      esp8266: { reason: "ATE0 ERROR", reported: "failed" },
      sim800: { reason: "E0 ERROR", reported: "failed", closesWithinMs: 3000 },
      sim7600: { reason: "ERROR", reported: "failed", closesWithinMs: 3000, check: (_r, opened) => expect(opened[0]).toBe("AT") },
    },
  },
  {
    name: "garbage lines during the bring-up: at most one open fails, then data flows",
    when: "bring-up",
    startedMs: 5,
    inject: (sim) => sim.garbage(4),
    cells: {
      esp8266: { rig: { sim: { seed: 7 } }, reason: AT_MOST_ONE_FAILURE },
      sim800: { rig: { sim: { seed: 7 } }, reason: AT_MOST_ONE_FAILURE },
      sim7600: { rig: { sim: { seed: 7 } }, reason: AT_MOST_ONE_FAILURE },
    },
  },
  {
    name: "garbage lines on an open link are ignored: the link is kept",
    when: "kept",
    repeat: 2,
    cells: {
      esp8266: {
        rig: { sim: { seed: 7 } },
        reason: null,
        inject: async (r) => {
          r.sim.garbage(6);
          await sleep(20);
        },
      },
      sim800: {
        rig: { sim: { seed: 7 } },
        reason: null,
        inject: async (r) => {
          r.sim.garbage(5);
          await sleep(50);
        },
        check: (_r, _opened, s) => expect(s!.parseErrors).toBe(0),
      },
      sim7600: {
        rig: { sim: { seed: 7 } },
        reason: null,
        inject: async (r) => {
          r.sim.garbage(5);
          await sleep(50);
        },
        check: (_r, _opened, s) => expect(s!.parseErrors).toBe(0),
      },
    },
  },
  // the module
  {
    name: "spontaneous reboot (noise, a banner, echo back on): the socket closes, the next open does the whole bring-up",
    when: "link",
    inject: (sim) => sim.reboot(),
    cells: {
      esp8266: { reason: "reboot", reported: "failed", check: (_r, opened) => expect(opened.slice(0, 2)).toEqual(["AT+RST", "ATE0"]) },
      sim800: { reason: "RDY", reported: "failed", closesWithinMs: 3000 },
      // the network service went with the restart: a full bring-up from the AT probe
      sim7600: { reason: "RDY", reported: "failed", check: (_r, opened) => expect([opened[0], opened.includes("AT+NETOPEN")]).toEqual(["AT", true]) },
    },
  },
  {
    name: "the network lost (WIFI DISCONNECT, +PDP: DEACT, +CIPEVENT): the socket closes, the next open joins or attaches again first",
    when: "link",
    inject: (sim) => sim.netDown(),
    cells: {
      esp8266: {
        reason: "WIFI DISCONNECT",
        reported: "failed",
        check: (_r, opened) => expect(opened).toEqual(['AT+CWJAP="lab","***"', 'AT+CIPSTART="TCP","broker.local",1883']),
      },
      // AT+CIPSHUT and a fresh attach
      sim800: {
        reason: "+PDP: DEACT",
        reported: "failed",
        closesWithinMs: 3000,
        check: (_r, _opened, _s, again) => {
          expect(again).toContain("AT+CIPSHUT");
          expect(again).toContain("AT+CIICR");
        },
      },
      // the service stays broken (AT+NETOPEN refused) until AT+NETCLOSE: a full bring-up with AT+NETCLOSE first
      sim7600: {
        reason: "+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY",
        reported: "failed",
        struck: (r) => expect(r.sim.netBroken).toBe(true),
        check: (r, _opened, _s, again) => {
          expect(again[0]).toBe("AT");
          expect(again.indexOf("AT+NETCLOSE")).toBeGreaterThanOrEqual(0);
          expect(again.indexOf("AT+NETCLOSE")).toBeLessThan(again.indexOf("AT+NETOPEN"));
          expect(r.sim.netBroken).toBe(false);
        },
      },
    },
  },
  {
    name: "mute module: the command times out, the socket closes, and the module works again once it answers",
    when: "link",
    inject: (sim) => sim.mute(true),
    trigger: "send",
    heal: (sim) => sim.mute(false),
    cells: {
      // the muted part took the CIPSEND and now swallows the first bytes as its
      // data, so the first reset may go unanswered: a few tries, and at least one fails
      esp8266: { reason: "timeout", reported: "failed", closesWithinMs: 3000, retry: "after failures" },
      // TIMEOUT after the prompt's 3 s, then AT probes until it answers and a fresh bring-up
      sim800: {
        rig: { speed: 30 },
        reason: "TIMEOUT",
        reported: "failed",
        closesWithinMs: 6000,
        check: (r, _opened, _s, again) => {
          // The module was owed the 2 bytes of the CIPSEND it prompted for while muted: the
          // "AT" of the first probe went there (what a real SIM800 would do too); a later
          // probe was answered, and the bring-up shut the old IP stack down. No restart.
          expect(again.filter((c) => c == "AT").length).toBeGreaterThanOrEqual(1);
          expect(again).toContain("AT+CIPSHUT");
          expect(again.some((c) => c.includes("CFUN"))).toBe(false);
          expect(r.states).not.toContain("resetting");
        },
      },
      // TIMEOUT after AT+CIPSEND's 125 s, then AT probes until it answers and a fresh bring-up
      sim7600: {
        rig: { speed: 60 },
        reason: "TIMEOUT",
        reported: "failed",
        closesWithinMs: 6000,
        check: (r, _opened, _s, again) => {
          // The module was owed the 2 bytes of the AT+CIPSEND=0,2 it prompted for while muted: the
          // "AT" of the next open's probe went there (and to the broker, which dropped the old link),
          // and the OK of that send answered the probe: the probe went out, the module is not in
          // the commands it saw; then a fresh bring-up. No restart.
          expect(r.log.filter((l) => l == "at: AT").length, "probes, one per bring-up").toBeGreaterThanOrEqual(2);
          expect(again[0]).toBe("ATE0");
          expect(again).toContain("AT+NETCLOSE");
          expect(again.some((c) => c.includes("CRESET") || c.includes("CPOF"))).toBe(false);
          expect(r.states).not.toContain("resetting");
        },
      },
    },
  },
  {
    name: "mute module with the control pin wired (CH_PD, PWRKEY): the pin un-hangs it on the next open",
    when: "link",
    inject: (sim) => sim.mute(true),
    trigger: "send",
    cells: {
      esp8266: { rig: { hardReset: true }, reason: "timeout", reported: "failed", closesWithinMs: 3000 },
      sim800: { rig: { powerOn: true, speed: 30 }, reason: "TIMEOUT", reported: "failed", closesWithinMs: 6000, check: (r) => expect(r.powerOns).toBe(1) },
      // the probe goes unanswered for 30 s (driver time): PWRKEY, which also un-mutes the simulated module
      sim7600: {
        rig: { powerOn: true, speed: 60, driver: { regDeadline: 120000 } },
        reason: "TIMEOUT",
        reported: "failed",
        closesWithinMs: 6000,
        check: (r) => {
          expect(r.powerOns).toBeGreaterThanOrEqual(1);
          expect(r.states).toContain("resetting");
        },
      },
    },
  },
  {
    name: "under-voltage power down: the socket closes, the power key on the next open",
    when: "link",
    cells: {
      sim800: {
        rig: { powerOn: true },
        inject: (r) => r.sim.powerDown(true),
        reason: "UNDER-VOLTAGE POWER DOWN",
        reported: "failed",
        closesWithinMs: 3000,
        check: (r) => expect(r.powerOns).toBe(1),
      },
      esp8266: notApplicable("the ESP8266 has no power key and reports no power down"),
      sim7600: notApplicable('the simulated SIM7600 / A7670 says only "NORMAL POWER DOWN" (powerDown()): the next two rows'),
    },
  },
  {
    name: "power down on a link (NORMAL POWER DOWN): the socket closes with the line, the power key on the next open",
    when: "link",
    cells: {
      esp8266: notApplicable("the ESP8266 has no power key and reports no power down"),
      sim800: {
        rig: { powerOn: true },
        inject: (r) => r.sim.powerDown(),
        reason: "NORMAL POWER DOWN",
        reported: "failed",
        closesWithinMs: 3000,
        check: (r) => expect(r.powerOns).toBe(1),
      },
      // the socket and the network end at the line; the next open probes, unanswered for 30 s (driver time): PWRKEY
      sim7600: {
        rig: { powerOn: true, speed: 60, driver: { regDeadline: 120000 } },
        inject: (r) => r.sim.powerDown(),
        reason: "NORMAL POWER DOWN",
        reported: "failed",
        closesWithinMs: 3000,
        check: (r, opened) => {
          expect(r.powerOns).toBe(1);
          expect(r.states).toContain("resetting");
          expect(opened).toContain("AT+NETOPEN");
        },
      },
    },
  },
  {
    name: "the module powered down between links (NORMAL POWER DOWN): the next open ends with the line, the one after probes, presses PWRKEY after 30 s and comes up",
    when: "reopen",
    cells: {
      esp8266: notApplicable("the ESP8266 has no power key"),
      sim800: notApplicable("the SIM800's power down is the row above (its driver takes the URC)"),
      sim7600: {
        rig: { powerOn: true, speed: 60, driver: { regDeadline: 120000 } },
        inject: (r) => r.sim.powerDown(),
        // the line arrives while the next open's AT+CIPOPEN (the network service counted as open) waits: that open ends with it
        reason: "NORMAL POWER DOWN",
        reported: "failed",
        closesWithinMs: 3000,
        check: (r) => {
          expect(r.powerOns).toBeGreaterThanOrEqual(1);
          expect(r.states).toContain("resetting");
        },
      },
    },
  },
  {
    name: "lost +IPD bytes: the stream is corrupt, the session closes, and a fresh open works",
    when: "link",
    trigger: "close", // the MQTT session would see the malformed stream and close: do so
    cells: {
      esp8266: {
        async inject(r, s, world) {
          const id = nextId();
          await r.subscribe(s, `f/${id}/in`);
          r.sim.loseIpdBytes(3);
          const payload = "0123456789abcdef";
          await world.phone.publishAsync(`f/${id}/in`, payload);
          // the frame is short by 3 bytes: the engine takes them from what follows,
          // so what reached the socket is not the packet the broker sent
          await sleep(50);
          r.publish(`f/${id}/out`, "nudge"); // the modem's reply supplies the missing bytes
          await until(() => world.got.some((m) => m.topic == `f/${id}/out`), 5000, "nudge");
          expect(delivered(s, payload)).toBe(false);
        },
        reason: "closed",
        closesWithinMs: 0,
      },
      sim800: {
        rig: { speed: 40 },
        async inject(r, s, world) {
          await r.subscribe(s, "dev/lossy");
          r.sim.loseIpdBytes(3);
          world.phone.publish("dev/lossy", "0123456789");
          world.phone.publish("dev/lossy", "abcdefghij");
          await sleep(200);
          // the bytes the transport delivered are not the broker's: a session would see a bad packet and close
          expect(s.packets.filter((p) => p.cmd == "publish").length).toBeLessThan(2);
        },
        // The engine ate "\r\nC" of CLOSE OK as the owed bytes: AT+CIPCLOSE timed out (5 s), the
        // bearer counts as down; the module answers the next open's probe: a fresh bring-up, no restart.
        reason: "TIMEOUT",
        reported: "failed",
        closesWithinMs: 6000,
        check: (r) =>
          expect(r.states).toEqual([
            ...["attaching +CSQ: 18,0", "joined", "connecting", "connected", "failed TIMEOUT"],
            ...["attaching +CSQ: 18,0", "joined", "connecting", "connected"],
          ]),
      },
      // pushed "+IPD<len>" frames: the short one takes its missing bytes from the next frame's head
      sim7600: {
        async inject(r, s, world) {
          const id = nextId();
          await r.subscribe(s, `f/${id}/in`);
          r.sim.loseIpdBytes(3);
          await world.phone.publishAsync(`f/${id}/in`, "0123456789");
          await world.phone.publishAsync(`f/${id}/in`, "abcdefghij");
          await sleep(200);
          // the bytes the transport delivered are not the broker's: a session would see a bad packet and close
          expect(s.packets.filter((p) => p.cmd == "publish").length).toBeLessThan(2);
        },
        reason: "closed",
        reported: "joined",
        check: (_r, opened) => expect(opened[0]).toMatch(/^AT\+CIPOPEN=0,/),
      },
    },
  },
  // the network and the SIM
  {
    name: "+CWJAP:1 (the access point does not answer): a clear reason, then the join works",
    when: "bring-up",
    cells: {
      esp8266: { rig: { sim: { joinFail: 1 } }, reason: "wifi timeout", reported: "failed", heal: (r) => (r.sim.joinFail = undefined) },
      sim800: notApplicable("a WiFi fault: a cellular module joins no access point"),
      sim7600: notApplicable("a WiFi fault: a cellular module joins no access point"),
    },
  },
  {
    name: "+CWJAP:4 (the join fails): a clear reason, then the join works",
    when: "bring-up",
    cells: {
      esp8266: { rig: { sim: { joinFail: 4 } }, reason: "wifi failed", reported: "failed", heal: (r) => (r.sim.joinFail = undefined) },
      sim800: notApplicable("a WiFi fault: a cellular module joins no access point"),
      sim7600: notApplicable("a WiFi fault: a cellular module joins no access point"),
    },
  },
  {
    name: "no SIM: the open fails with the module's answer",
    when: "bring-up",
    cells: {
      esp8266: notApplicable("a cellular fault: a WiFi module has no SIM, no registration and no APN"),
      sim800: { rig: { sim: { sim: "none" } }, reason: "+CPIN? +CME ERROR: 10", reported: "failed", retry: "none" },
      sim7600: { rig: { sim: { sim: "none" } }, reason: "+CME ERROR: 10", reported: "failed", retry: "none" },
    },
  },
  {
    name: "the network never registers: the open fails at the registration deadline",
    when: "bring-up",
    cells: {
      esp8266: notApplicable("a cellular fault: a WiFi module has no SIM, no registration and no APN"),
      sim800: {
        rig: { sim: { regStat: 0 }, driver: { regDeadline: 6000 } },
        reason: "no network",
        reported: "failed",
        retry: "none",
        check: (r) => expect(r.states[r.states.length - 1]).toBe("failed no network"),
      },
      sim7600: {
        rig: { sim: { regStat: 0 }, driver: { regDeadline: 6000 } },
        reason: "no network",
        reported: "failed",
        retry: "none",
        check: (r) => expect(r.states[r.states.length - 1]).toBe("failed no network"),
      },
    },
  },
  {
    name: "slow registration past the registration deadline: that open fails with \"no network\", once registered the next one works",
    when: "bring-up",
    cells: {
      esp8266: notApplicable("a cellular fault: a WiFi module has no SIM, no registration and no APN"),
      sim800: { rig: { sim: { regPolls: 6 }, driver: { regDeadline: 2000 } }, reason: "no network", reported: "failed", closesWithinMs: 20000 },
      sim7600: { rig: { sim: { regPolls: 6 }, driver: { regDeadline: 2000 } }, reason: "no network", reported: "failed", closesWithinMs: 20000 },
    },
  },
  {
    name: "a wrong APN: the attach fails (AT+CIICR, AT+NETOPEN); the right one works",
    when: "bring-up",
    cells: {
      esp8266: notApplicable("a cellular fault: a WiFi module has no SIM, no registration and no APN"),
      sim800: {
        rig: { driver: { apn: "wrong" } },
        reason: "+CIICR ERROR",
        reported: "failed",
        heal: (r) => (r.modem = new Sim800(r.engine, r.clock, { apn: "internet" })),
      },
      // the network knows only "internet": "+NETOPEN: 1"
      sim7600: {
        rig: { driver: { apn: "wrong" } },
        reason: "+NETOPEN: 1",
        reported: "failed",
        heal: (r) => (r.modem = new Sim7600(r.engine, r.clock, { apn: "internet" })),
      },
    },
  },
  {
    name: "TLS on a firmware without SSL: AT+CIPSSL=1 answers ERROR, the open fails with it, no AT+CIPSTART",
    when: "bring-up",
    cells: {
      sim800: {
        rig: { driver: { ssl: true }, sim: { sslSupport: false } },
        reason: "+CIPSSL ERROR",
        reported: "joined",
        retry: "none",
        check: (r) => {
          expect(r.sim.commands.filter((c) => c.startsWith("AT+CIPSTART"))).toEqual([]);
          expect(r.states.at(-1)).toBe("joined +CIPSSL ERROR");
        },
      },
      esp8266: notApplicable("the SIM800's AT+CIPSSL: the ESP8266 firmware's SSL is AT+CIPSTART=\"SSL\""),
      sim7600: notApplicable("the SIM7600 / A7670 firmware has its SSL service (AT+CCH*) built in: its TLS faults are the next rows"),
    },
  },
  {
    name: "TLS handshake refused (the module offers only TLS 1.0 / 1.1): the open fails with the module's code, the next one works",
    when: "bring-up",
    cells: {
      esp8266: notApplicable("its failed handshakes, in each shape its firmware shows them, are test/e2e/tls-handshake.test.ts"),
      sim800: notApplicable("its failed handshakes, in each shape its firmware shows them, are test/e2e/tls-handshake.test.ts"),
      // "+CCHOPEN: 0,15" (handshake error); the SSL service counts as gone: the next open stops and starts it again
      sim7600: {
        rig: { driver: { ssl: true } },
        inject: (r) => void (r.sim.tls = { minVersion: "TLSv1", maxVersion: "TLSv1.1" }),
        reason: "+CCHOPEN: 0,15",
        reported: "failed",
        struck: (r) => expect([r.sim.openSessions(), r.sim.links()]).toEqual([[], []]),
        heal: (r) => void (r.sim.tls = {}),
        retry: "at once",
        check: (r, opened) => {
          expect(opened.indexOf("AT+CCHSTOP")).toBeLessThan(opened.indexOf("AT+CCHSTART"));
          expect(opened.at(-1)).toBe('AT+CCHOPEN=0,"broker.example",1883,2');
          expect(r.sim.links().map((l) => l.tls)).toEqual([true]);
          expect(r.sim.commands.filter((c) => /CIPOPEN|NETOPEN/.test(c))).toEqual([]);
        },
      },
    },
  },
  {
    name: "TLS: the SSL service does not start (+CCHSTART: <err>): that open fails with it, no AT+CCHOPEN; the next one works",
    when: "bring-up",
    cells: {
      esp8266: notApplicable("the SIM7600's SSL service: the ESP8266 has no service to start"),
      sim800: notApplicable("the SIM7600's SSL service: the SIM800's TLS is AT+CIPSSL (the TLS row above)"),
      // the next open starts from AT+CCHSTOP (ERROR: not started, accepted) and starts the service again
      sim7600: {
        rig: { driver: { ssl: true } },
        inject: (r) => void (r.sim.cchstartErrors = 1),
        reason: "+CCHSTART: 9",
        reported: "failed",
        struck: (r) => {
          expect(r.sim.sslStarted).toBe(false);
          expect(r.sim.commands.filter((c) => c.startsWith("AT+CCHOPEN"))).toEqual([]);
        },
        retry: "at once",
        check: (r, opened) => {
          expect(opened.filter((c) => /^AT\+CCH(STOP|START|OPEN)/.test(c))).toEqual(["AT+CCHSTOP", "AT+CCHSTART", 'AT+CCHOPEN=0,"broker.example",1883,2']);
          expect(r.sim.sslStarted).toBe(true);
        },
      },
    },
  },
];
