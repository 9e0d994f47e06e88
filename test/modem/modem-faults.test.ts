/**
 * The modem fault table (test/support/modem-faults.ts), played for each modem kind: the
 * real AT engine and driver on a sped-up real clock against that modem's simulator
 * dialect, whose sockets reach an in-process Aedes broker (a driver that asks for TLS: a
 * TLS port in front of it, with the test certificate); an MQTT.js phone. One test
 * per row that has a cell for the modem (not notApplicable); each breaks the link or the module, checks
 * what the driver reports, and ends with MQTT data flowing again (unless the fault stays).
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import mqtt from "mqtt";
import { startAedesBroker, within } from "../support/modem-rig";
import { startTlsFront, type TlsFront } from "../support/tls";
import { MODEM_KITS, rowsFor, runModemFaultRow, type FaultWorld, type TableModem } from "../support/modem-faults";

const world = { got: [] } as unknown as FaultWorld;
let tlsFront: TlsFront | undefined;

beforeAll(async () => {
  world.broker = await startAedesBroker();
  tlsFront = await startTlsFront(world.broker.port);
  world.tlsPort = tlsFront.port;
  world.phone = await within(mqtt.connectAsync(`mqtt://127.0.0.1:${world.broker.port}`, { clientId: "phone-faults", reconnectPeriod: 0 }), 5000, "phone");
  await world.phone.subscribeAsync("f/+/out");
  world.phone.on("message", (topic, payload) => world.got.push({ topic, payload: payload.toString("latin1") }));
});

afterAll(async () => {
  await world.phone?.endAsync();
  await tlsFront?.close();
  await world.broker?.close();
});

/** One describe per modem kind, one test per row that has a cell for it. */
function playTable<K extends TableModem>(kind: K): void {
  describe(`${kind} driver recovers from every simulator fault`, () => {
    for (const { row, cell } of rowsFor(kind)) it(row.name, () => runModemFaultRow(row, MODEM_KITS[kind], cell, world));
  });
}

for (const kind of Object.keys(MODEM_KITS) as TableModem[]) playTable(kind);
