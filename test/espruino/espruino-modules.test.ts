/**
 * The comparison stack of `npm run bench -- --espruino --modules <dir>`: Espruino's own
 * AT, MQTT and ESP8266WiFi modules (ESPRUINO_MODULES, a directory the user fetched them
 * into; never part of this repository) doing this firmware's job from Storage on the real
 * interpreter, against the ESP8266 simulator in multiple-connection mode and Aedes. It
 * checks that the compared program does the same job, so the bench compares like with
 * like. Skipped, with the reason, without an interpreter or without the modules.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startAedes, type AedesBroker } from "../support/brokers";
import { Phone, RealBoard, realBoardUnavailable, until } from "../support/real-board";
import { modulesProgram, modulesUnavailable } from "../../scripts/device/espruino-modules";

const MODULES_DIR = process.env.ESPRUINO_MODULES || "";
const why =
  realBoardUnavailable() ||
  (!MODULES_DIR ? "ESPRUINO_MODULES is not set: point it at a directory holding Espruino's AT.js, MQTT.js and ESP8266WiFi.js" : modulesUnavailable(MODULES_DIR));
if (why) console.log(`test/espruino/espruino-modules.test.ts skipped: ${why}`);

describe.skipIf(!!why)("Espruino's own modules from Storage, on the same harness", () => {
  let broker: AedesBroker;
  let phone: Phone;
  let board: RealBoard | undefined;

  beforeAll(async () => {
    broker = await startAedes();
    phone = await Phone.connect(broker.port);
  });
  afterAll(async () => {
    await board?.stop();
    await phone?.end();
    await broker?.stop();
  });

  it("joins through AT+CIPMUX=1, reports online, and switches the LED on on/off/toggle with a retained state report", async () => {
    const subscribed: string[] = [];
    broker.broker.on("subscribe", (subs: { topic: string; qos: number }[], client: { id: string } | null) => {
      if (client?.id === "real-board") for (const s of subs) subscribed.push(`${s.topic}@${s.qos}`);
    });
    board = await RealBoard.start({ modem: "esp8266", script: await modulesProgram(MODULES_DIR), brokerPort: broker.port });
    await until(() => phone.status === "online" && phone.states.length > 0, 60_000, "the modules' program online with a state report");
    expect(subscribed).toEqual(["led@1"]);
    const sim = board.sim as unknown as { commands: string[] };
    expect(sim.commands).toContain("AT+CIPMUX=1");
    expect(sim.commands.some((c) => c.startsWith('AT+CIPSTART=0,"TCP","broker.example",1883'))).toBe(true);
    expect(phone.states.at(-1)).toBe("off");
    expect(await phone.command("toggle")).toBe("on");
    expect(await phone.command("toggle")).toBe("off");
    expect(await phone.command("ON")).toBe("on");
    expect(await phone.command("off")).toBe("off");
    // the reports are retained: a new subscriber gets the last one
    const late = await Phone.connect(broker.port);
    try {
      await until(() => late.states.length > 0 && late.status === "online", 10_000, "the retained state and status");
      expect(late.states.at(-1)).toBe("off");
    } finally {
      await late.end();
    }
  }, 90_000);
});
