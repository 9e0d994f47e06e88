/**
 * End to end with the SIMCom LTE modem (SIM7600 / A7670): the built
 * <board>-sim7600.js scripts in the virtual board on a fake clock, the LTE
 * dialect of the modem simulator, Aedes or Mosquitto, a phone on MQTT.js
 * (test/support/e2e-rig.ts). Commands, keep-alive, recovery from each fault the
 * dialect can play (network loss, the peer closing, "+CME ERROR" on open, slow
 * registration, a spontaneous reset, a silent module brought back with PWRKEY),
 * and no QoS 1 command lost across them.
 */
import { afterEach, describe, expect, it } from "vitest";
import { pingTimes, SECRETS, startRig, type Rig } from "../support/e2e-rig";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

describe("SIM7600 / A7670 end to end", () => {
  it("pico-sim7600 on Aedes: on, off, toggle and junk; led/state and led/status retained; data pushed (+IPD<len>, no RECV FROM: line)", async () => {
    rig = await startRig({ board: "pico", modem: "sim7600" });
    const r = rig;
    expect(await r.command("on")).toBe("on");
    expect(r.lit()).toBe(true);
    expect(await r.command("off")).toBe("off");
    expect(r.lit()).toBe(false);
    await r.toggleObeyed("the first toggle");
    await r.toggleObeyed("the second toggle");
    expect(await r.command("bogus")).toBe(undefined);
    expect(await r.retained("led/status")).toBe("online");
    expect(await r.retained("led/state")).toBe(r.lit() ? "on" : "off");
    // received data came pushed ("+IPD<len>" and the raw bytes), without "RECV FROM:" (AT+CIPSRIP=0), never pulled
    expect(r.commands("AT+CIPRXGET")).toEqual([]);
    expect(r.commands("AT+CIPSRIP=0")).toHaveLength(1);
    const fromModem = r.wire.filter((e) => e.dir === "modem>").map((e) => e.bytes).join("");
    expect(fromModem).toMatch(/\r\n\+IPD\d+\r\n/);
    expect(fromModem).not.toContain("RECV FROM:");
    // the APN credentials reached the module (SIMCom's order: password, then user) and no console line
    expect(r.sim7600.cgauth).toEqual(["1", "1", SECRETS.apnPassword, SECRETS.apnUser]);
    expect(r.sim7600.cgdcont[2]).toBe(SECRETS.apn);
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });

  for (const board of ["original", "nucleo-f401re"]) {
    it(`${board}-sim7600 on Mosquitto: the command set switches the LED, led/state retained`, async () => {
      rig = await startRig({ board, modem: "sim7600", broker: "mosquitto" });
      const r = rig;
      expect(await r.command("on")).toBe("on");
      await r.toggleObeyed("on Mosquitto");
      expect(await r.retained("led/state")).toBe(r.lit() ? "on" : "off");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }

  it("keep-alive (60 s, fake clock): a PINGREQ (AT+CIPSEND=0,2, C0 00) 60 s after the last packet; PINGRESPs (pushed +IPD2 frames) keep the link up", async () => {
    rig = await startRig({ board: "pico", modem: "sim7600" });
    const r = rig;
    const online = r.mark();
    const pingresps = () => r.wire.filter((e) => e.dir === "modem>").map((e) => e.bytes).join("").split("\r\n+IPD2\r\n\xd0\x00").length - 1;
    await r.waitFor(() => pingTimes(r.wire).length >= 3 && pingresps() >= 3, "3 PINGREQs and their PINGRESPs", { timeoutMs: 300_000 });
    const pings = pingTimes(r.wire);
    for (let i = 1; i < pings.length; i++) {
      expect(pings[i] - pings[i - 1], `PINGREQ ${i + 1} one keep-alive after the previous`).toBeGreaterThanOrEqual(59_500);
      expect(pings[i] - pings[i - 1]).toBeLessThanOrEqual(61_000);
    }
    expect(r.commands("AT+CIPOPEN").length, "still the first connection").toBe(1);
    expect(r.received("led/status", online)).toEqual([]);
    await r.toggleObeyed("after 3 keep-alive periods");
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });

  // Each fault; while the link is down the phone sends a QoS 1 command: the board's
  // persistent session (clean: false) gets it once it is back. None is lost.
  const faults: [string, (r: Rig) => void][] = [
    ["the network drops (+CIPEVENT: NETWORK CLOSED UNEXPECTEDLY)", (r) => r.sim.netDown()],
    ["the peer closes the link (+IPCLOSE: 0,1)", (r) => r.sim.dropLink()],
    ["the link is closed and the next AT+CIPOPEN answers +CME ERROR", (r) => {
      r.sim7600.openErrors = 2;
      r.sim.dropLink();
    }],
    ["the module resets by itself (RDY)", (r) => r.sim.reboot()],
  ];
  for (const [what, fault] of faults) {
    it(`pico-sim7600: ${what}: it reconnects, republishes led/state, and the QoS 1 command sent meanwhile is applied`, async () => {
      rig = await startRig({ board: "pico", modem: "sim7600" });
      const r = rig;
      await r.command("off");
      const mark = r.mark();
      const opens = r.commands("AT+CIPOPEN").length;
      fault(r);
      await r.publish(r.topic(), "on");
      await r.waitOnline(mark, { timeoutMs: 300_000 });
      await r.waitFor(() => r.lit() === true, "the QoS 1 \"on\" sent while the link was down", { timeoutMs: 120_000 });
      expect(r.commands("AT+CIPOPEN").length).toBeGreaterThan(opens);
      await r.idle(5_000);
      await r.toggleObeyed(`after ${what}`);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }

  it("pico-sim7600: slow LTE registration at boot (AT+CEREG? searching for 20 polls): it waits, then comes online", async () => {
    rig = await startRig({ board: "pico", modem: "sim7600", sim: { regPolls: 20 } });
    const r = rig;
    expect(r.commands("AT+CEREG?;+CGREG?").length).toBeGreaterThan(20);
    await r.toggleObeyed("after a slow registration");
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });

  // A module gone silent (PWRKEY pulse, back once it answers): the board fault table's row for pico-sim7600 (test/support/board-faults.ts).

  it("linux-sim7600 (no PWRKEY): the module resets by itself; the board is back", async () => {
    rig = await startRig({ board: "linux", modem: "sim7600" });
    const r = rig;
    const mark = r.mark();
    r.sim.reboot();
    await r.waitOnline(mark, { timeoutMs: 300_000 });
    await r.toggleObeyed("after a reset");
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });
});
