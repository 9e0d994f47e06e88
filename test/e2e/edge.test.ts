/**
 * End to end, the edges of the README's promises: a topic prefix, the default client
 * id, commands at QoS 0 and 2, a burst of commands faster than the link, and an
 * oversize payload. Built scripts in the virtual board, the modem simulator, Aedes,
 * a phone on MQTT.js (test/support/e2e-rig.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { startRig, type Rig } from "../support/e2e-rig";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe("configuration", () => {
  it('"prefix": "kitchen" moves every topic under kitchen/ (linux-esp8266); plain "led" is not listened to', async () => {
    rig = await startRig({ board: "linux", modem: "esp8266", config: { prefix: "kitchen" } });
    const r = rig;
    expect(r.received("kitchen/led/status").map((m) => m.payload)).toEqual(["online"]);
    expect(await r.command("on")).toBe("on");
    expect(r.lit()).toBe(true);
    // the same command on the unprefixed topic reaches nobody
    const mark = r.mark();
    await r.publish("led", "off");
    await r.idle(3000);
    expect(r.lit()).toBe(true);
    expect(r.received("kitchen/led/state", mark)).toEqual([]);
    expect(await r.retained("kitchen/led/state")).toBe("on");
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });

  it('without "clientId" the board connects as "led-" + the tail of getSerial(), at most 23 characters (pico-sim800)', async () => {
    const ids: string[] = [];
    rig = await startRig({
      board: "pico", modem: "sim800", config: { clientId: undefined },
      aedes: { preConnect: (_client, packet, done) => { ids.push(packet.clientId); done(null, true); } },
    });
    const serial = "33FFD605-41573033-15720843"; // VirtualBoard's default getSerial()
    const board = ids.filter((i) => i.startsWith("led-"));
    expect(board.length, `client ids seen: ${ids.join(", ")}`).toBe(1);
    const id = board[0];
    expect(id.length, `${id}: MQTT 3.1.1 servers need only accept 1..23 characters`).toBeLessThanOrEqual(23);
    const tail = id.slice(4).replace(/-/g, "");
    expect(tail.length, `${id}: enough of the serial to tell boards apart`).toBeGreaterThanOrEqual(12);
    expect(serial.replace(/-/g, "").endsWith(tail), `${id} comes from the serial's tail`).toBe(true);
    expect(rig.problems(), rig.diagnostics()).toEqual([]);
  });
});

describe("commands", () => {
  for (const [board, modem] of [["original", "esp8266"], ["original", "sim800"]] as const) {
    it(`${board}-${modem}: commands published at QoS 0 and QoS 2 work too`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      for (const [payload, qos, lit] of [["on", 0, true], ["off", 2, false], ["toggle", 2, true], ["toggle", 0, false]] as const) {
        const mark = r.mark();
        await r.publish("led", payload, { qos });
        await r.waitForMessage("led/state", undefined, mark);
        expect(r.lit(), `${payload} at QoS ${qos}`).toBe(lit);
      }
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });

    it(`${board}-${modem}: a burst of 15 commands faster than the link: all applied, and led/state ends at the LED's level`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      const mark = r.mark();
      // more commands than the session's outgoing table holds (8): the 8th state is "on", the last "off"
      const burst = ["on", "off", "on", "off", "on", "off", "on", "on", "toggle", "toggle", "toggle", "0", "1", "toggle", "false"];
      await Promise.all(burst.map((p) => r.publish("led", p))); // all sent before the board runs again
      await r.waitFor(() => r.received("led", mark).length === burst.length, "the phone to see its 15 commands", { timeoutMs: 2000 }).catch(() => {});
      // every command applied: the LED ends dark
      await r.waitFor(() => r.received("led/state", mark).length > 0 && r.lit() === false, "the burst to be applied", { timeoutMs: 60_000 });
      // then the reports settle: no more for a while, and the last one is the LED's level
      await r.idle(30_000);
      const states = r.received("led/state", mark).map((m) => m.payload);
      expect(r.lit()).toBe(false);
      expect(states.at(-1), `the last led/state reported (of ${JSON.stringify(states)})`).toBe("off");
      expect(await r.retained("led/state"), "retained led/state = the LED").toBe("off");
      expect(r.commands("AT+CIPSTART").length, "no reconnect").toBe(1);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });

    it(`${board}-${modem}: an oversize payload (3,000 bytes) is dropped with the link kept; the next command works`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      await r.command("on");
      const mark = r.mark();
      await r.publish("led", "off" + " ".repeat(2997));
      // the board takes it in (two +IPD frames) and drops it: no state change, no reconnect
      await r.idle(5000);
      expect(r.lit()).toBe(true);
      expect(r.received("led/state", mark)).toEqual([]);
      expect(await r.command("toggle")).toBe("off");
      expect(r.lit()).toBe(false);
      expect(r.commands("AT+CIPSTART").length, "no reconnect").toBe(1);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});
