/**
 * The real MQTT session (src/session) over each modem driver, its simulator dialect and
 * a real broker (Aedes in-process), with an MQTT.js phone: the LED app's path end to
 * end, through the session fault table (test/support/session-faults.ts): messages both
 * ways, a fault, the session back by itself, and a command after it.
 */
import { afterAll, beforeAll, describe, it } from "vitest";
import { startAedesBroker, type Broker } from "../support/modem-rig";
import { SESSION_FAULT_ROWS, SESSION_KITS, runSessionFaultRow, type SessionModem } from "../support/session-faults";

let broker: Broker;
beforeAll(async () => {
  broker = await startAedesBroker();
});
afterAll(async () => {
  await broker.close();
});

for (const kind of Object.keys(SESSION_KITS) as SessionModem[]) {
  describe(`MqttClient over the ${kind} driver`, () => {
    for (const row of SESSION_FAULT_ROWS) {
      if (!("notApplicable" in row.cells[kind])) it(`connects, exchanges messages with a phone and reconnects after ${row.name}`, () => runSessionFaultRow(row, kind, broker));
    }
  });
}
