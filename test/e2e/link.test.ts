/**
 * End to end, the connection's life: keep-alive on the board's fake clock, recovery
 * after the link drops (modem, broker restart, modem reboot), a retained command
 * waiting at boot, and the last will "offline" when the link dies. Built scripts in
 * the virtual board, the modem simulator, Aedes, a phone on MQTT.js (test/support/e2e-rig.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { pingTimes, startRig, type Rig } from "../support/e2e-rig";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const BOTH = [["pico", "esp8266"], ["pico", "sim800"]] as const;

describe("keep-alive on the fake clock (keepAlive 60)", () => {
  for (const [board, modem] of BOTH) {
    it(`${board}-${modem}: idle, a PINGREQ (AT+CIPSEND=2, C0 00) goes out 60 s after the last packet, not before; PINGRESPs keep the link up`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      const online = r.mark();
      const pingresps = () => r.wire.filter((e) => e.dir === "modem>").map((e) => e.bytes).join("").split("+IPD,2:\xd0\x00").length - 1;
      await r.waitFor(() => pingTimes(r.wire).length >= 4 && pingresps() >= 4, "4 PINGREQs and their PINGRESPs", { timeoutMs: 300_000 });
      const pings = pingTimes(r.wire);
      // the board's last write before the first PINGREQ's AT+CIPSEND=2: the last MQTT packet sent
      const firstPingCmd = r.wire.findIndex((e) => e.dir === "board>" && e.bytes.includes("AT+CIPSEND=2\r"));
      const lastBefore = r.wire.slice(0, firstPingCmd).filter((e) => e.dir === "board>").pop()!;
      const idle = pings[0] - lastBefore.t;
      expect(idle, "first PINGREQ after 60 s idle (not before)").toBeGreaterThanOrEqual(59_500);
      expect(idle).toBeLessThanOrEqual(61_000);
      for (let i = 1; i < pings.length; i++) {
        expect(pings[i] - pings[i - 1], `PINGREQ ${i + 1} one keep-alive after the previous`).toBeGreaterThanOrEqual(59_500);
        expect(pings[i] - pings[i - 1]).toBeLessThanOrEqual(61_000);
      }
      // every PINGREQ answered (D0 00 came back in +IPD, awaited above), none extra, and the link never went down
      expect(pingTimes(r.wire).length, "no extra PINGREQ").toBe(4);
      expect(r.commands("AT+CIPSTART").length, "still the first connection").toBe(1);
      expect(r.received("led/status", online)).toEqual([]);
      expect(r.sim.links().length).toBe(1);
      await r.toggleObeyed("after 4 keep-alive periods");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("recovery after the link drops", () => {
  // pico: the modems' control lines (CH_PD reset, PWRKEY); linux: none (AT+RST, AT+CFUN=1,1)
  for (const [board, modem] of [...BOTH, ["linux", "esp8266"], ["linux", "sim800"]] as const) {
    it(`${board}-${modem}: modem drops the link, broker restarts, modem reboots — each time it reconnects, republishes led/state and obeys`, async () => {
      rig = await startRig({ board, modem });
      const r = rig;
      await r.command("on");
      const faults: Array<[string, () => Promise<void> | void]> = [
        ["the modem drops the link (sim.dropLink)", () => r.sim.dropLink()],
        ["the broker restarts", () => r.restartBroker()],
        ["the modem reboots (sim.reboot)", () => r.sim.reboot()],
      ];
      for (const [what, fault] of faults) {
        const connects = r.commands("AT+CIPSTART").length;
        const lit = r.lit();
        const mark = r.mark();
        await fault();
        await r.waitOnline(mark, { timeoutMs: 200_000 });
        expect(r.commands("AT+CIPSTART").length, `a new connection after: ${what}`).toBeGreaterThan(connects);
        // led/state republished after the reconnect, with the LED's level, which the fault did not change
        expect(r.lit(), `LED kept after: ${what}`).toBe(lit);
        const online = r.messages.findIndex((m, i) => i >= mark && m.topic === "led/status" && m.payload === "online" && !m.retain);
        expect(r.received("led/state", online).map((m) => m.payload)[0], `led/state republished after: ${what}`).toBe(lit ? "on" : "off");
        await r.toggleObeyed(`after: ${what}`);
      }
      expect(await r.retained("led/state")).toBe(r.lit() ? "on" : "off");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("boot", () => {
  for (const [board, modem] of BOTH) {
    it(`${board}-${modem}: a retained "on" waiting on the broker is applied at boot`, async () => {
      rig = await startRig({ board, modem, boot: false });
      const r = rig;
      await r.publish("led", "on", { retain: true });
      r.boot();
      expect(r.lit(), "dark until the command arrives").toBe(false);
      await r.waitOnline();
      await r.waitFor(() => r.lit() === true, "the retained command to light the LED");
      await r.waitForMessage("led/state", "on");
      expect(r.vb.pin(r.ledPin)).toBe(r.level(true));
      expect(await r.retained("led/state")).toBe("on");
      await r.toggleObeyed("after the retained command");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("last will", () => {
  it("pico-esp8266: the link is cut without DISCONNECT (modem silent, socket gone): the phone sees led/status offline; the board comes back", async () => {
    rig = await startRig({ board: "pico", modem: "esp8266" });
    const r = rig;
    const mark = r.mark();
    r.sim.mute(true);
    r.sim.dropLink();
    await r.waitForMessage("led/status", "offline", mark, { timeoutMs: 30_000 });
    expect(await r.retained("led/status")).toBe("offline");
    r.sim.mute(false);
    await r.waitOnline(mark, { timeoutMs: 400_000 });
    expect(await r.retained("led/status")).toBe("online");
    await r.toggleObeyed("after the will and the reconnect");
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });

  it("pico-sim800 on Mosquitto: the TCP socket dies under a silent modem: led/status offline reaches the phone; the board comes back", async () => {
    rig = await startRig({ board: "pico", modem: "sim800", broker: "mosquitto" });
    const r = rig;
    const mark = r.mark();
    r.sim.mute(true);
    r.sim.dropLink();
    await r.waitForMessage("led/status", "offline", mark, { timeoutMs: 30_000 });
    r.sim.mute(false);
    await r.waitOnline(mark, { timeoutMs: 600_000 });
    expect(await r.retained("led/status")).toBe("online");
    await r.toggleObeyed("after the will and the reconnect");
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });
});
