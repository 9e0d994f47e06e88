/**
 * End to end against Mosquitto (test/support/brokers.ts), and the secrets: the WiFi
 * password, the APN password and the broker password never reach the board's console,
 * over whole runs that include authentication, refusals and reconnects.
 * Built scripts in the virtual board, the modem simulator, a phone on MQTT.js
 * (test/support/e2e-rig.ts).
 */
import { afterEach, describe, expect, it } from "vitest";
import { SECRETS, startRig, type Rig } from "../support/e2e-rig";

let rig: Rig | undefined;
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const COMMANDS: Array<[string, boolean | null]> = [
  ["on", true], ["off", false], ["toggle", true], ["0", false], ["1", true], ["junk", null], [" Off ", false], ["TRUE", true],
];

async function runCommands(r: Rig): Promise<void> {
  expect(r.vb.pin(r.ledPin)).toBe(r.level(false));
  const start = r.mark();
  let lit = false;
  const states: string[] = [];
  for (const [payload, next] of COMMANDS) {
    const logs = r.vb.console.length;
    const state = await r.command(payload);
    if (next === null) {
      expect(state).toBeUndefined();
      expect(r.vb.console.slice(logs)).toContain("led: ignored " + JSON.stringify(payload));
    } else {
      lit = next;
      states.push(lit ? "on" : "off");
      expect(state, `led/state after ${JSON.stringify(payload)}`).toBe(lit ? "on" : "off");
    }
    expect(r.vb.pin(r.ledPin), `pin after ${JSON.stringify(payload)}`).toBe(r.level(lit));
  }
  expect(r.received("led/state", start).map((m) => m.payload)).toEqual(states);
  expect(await r.retained("led/state")).toBe(lit ? "on" : "off");
  expect(await r.retained("led/status")).toBe("online");
}

describe("Mosquitto", () => {
  for (const [board, modem] of [["espruino-wifi", "esp8266"], ["pico", "sim800"], ["original", "sim800"]] as const) {
    it(`${board}-${modem}: the command set switches the LED, led/state and led/status retained`, async () => {
      rig = await startRig({ board, modem, broker: "mosquitto" });
      await runCommands(rig);
      expect(rig.problems(), rig.diagnostics()).toEqual([]);
    });
  }
});

describe("Mosquitto restarts without persistence: the board's session is gone", () => {
  for (const [board, modem] of [["nucleo-f401re", "esp8266"], ["nucleo-f401re", "sim800"]] as const) {
    it(`${board}-${modem}: reconnects, subscribes again (session not present), republishes led/state and obeys`, async () => {
      rig = await startRig({ board, modem, broker: "mosquitto" });
      const r = rig;
      await r.command("on");
      const subscribes = r.boardBytes().split("\x82").length; // SUBSCRIBE packets start with 0x82
      const mark = r.mark();
      await r.restartBroker();
      await r.waitOnline(mark, { timeoutMs: 200_000 });
      expect(r.received("led/state", mark).map((m) => m.payload)).toEqual(["on"]);
      expect(r.boardBytes().split("\x82").length, "a new SUBSCRIBE after CONNACK with session present 0").toBeGreaterThan(subscribes);
      expect(await r.retained("led/state"), "retained again on the fresh broker").toBe("on");
      expect(await r.retained("led/status")).toBe("online");
      await r.command("toggle");
      expect(r.lit()).toBe(false);
      await r.command("1");
      expect(r.lit()).toBe(true);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("secrets never reach the console", () => {
  it("nucleo-f401re-esp8266 on Aedes with a password: connects with it, reconnects with it, prints none of the secrets", async () => {
    const seen: string[] = [];
    rig = await startRig({
      board: "nucleo-f401re",
      modem: "esp8266",
      config: { broker: { host: "broker.example", port: 1883, username: SECRETS.brokerUser, password: SECRETS.brokerPassword } },
      phoneAuth: { username: "phone", password: "phone-pw" },
      aedes: {
        authenticate: (_client, user, pw, done) => {
          const p = pw?.toString("latin1") ?? "";
          if (user === SECRETS.brokerUser) seen.push(p);
          const ok = (user === SECRETS.brokerUser && p === SECRETS.brokerPassword) || (user === "phone" && p === "phone-pw");
          if (ok) done(null, true);
          else done(Object.assign(new Error("bad"), { returnCode: 4 }) as never, null);
        },
      },
    });
    const r = rig;
    expect(seen).toEqual([SECRETS.brokerPassword]);
    await r.command("on");
    const mark = r.mark();
    r.sim.dropLink();
    await r.waitOnline(mark);
    r.sim.netDown(); // WiFi lost: the board joins again (the WiFi password goes out once more)
    await r.waitOnline(r.mark(), { timeoutMs: 300_000 });
    await r.command("toggle");
    expect(seen.length).toBeGreaterThanOrEqual(3);
    expect(seen.every((p) => p === SECRETS.brokerPassword)).toBe(true);
    expect(r.esp.joins.length, "joined the AP with the WiFi password").toBeGreaterThanOrEqual(1);
    expect(r.esp.joins[0]).toEqual([SECRETS.ssid, SECRETS.wifiPassword]);
    expect(r.leakedSecrets(), r.vb.console.join("\n")).toEqual([]);
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });

  it("discovery-f4-sim800 on Mosquitto with a password file: APN and broker credentials used, none printed", async () => {
    rig = await startRig({
      board: "discovery-f4",
      modem: "sim800",
      broker: "mosquitto",
      mosquitto: { users: { [SECRETS.brokerUser]: SECRETS.brokerPassword, phone: "phone-pw" } },
      phoneAuth: { username: "phone", password: "phone-pw" },
      config: { broker: { host: "broker.example", port: 1883, username: SECRETS.brokerUser, password: SECRETS.brokerPassword } },
    });
    const r = rig;
    expect(r.sim800.cstt).toEqual([SECRETS.apn, SECRETS.apnUser, SECRETS.apnPassword]);
    await r.command("toggle");
    r.sim.netDown(); // +PDP: DEACT: a full bring-up again, AT+CSTT with the APN password
    await r.waitOnline(r.mark(), { timeoutMs: 300_000 });
    await r.command("toggle");
    expect(r.commands("AT+CSTT").length).toBeGreaterThanOrEqual(2);
    expect(r.leakedSecrets(), r.vb.console.join("\n")).toEqual([]);
    expect(r.problems(), r.diagnostics()).toEqual([]);
  });

  it("refusals print no secret either: a wrong WiFi password, then a wrong broker password", async () => {
    // The AP wants another password: the join fails ("+CWJAP:2"), again and again.
    rig = await startRig({ board: "pico", modem: "esp8266", sim: { password: "not-the-one" }, boot: false });
    rig.boot();
    await rig.waitFor(() => rig!.commands("AT+CWJAP").length >= 3, "three failed joins", { timeoutMs: 600_000 });
    expect(rig.vb.console.join("\n")).toMatch(/wrong password/);
    expect(rig.leakedSecrets(), rig.vb.console.join("\n")).toEqual([]);
    expect(rig.problems(), rig.diagnostics()).toEqual([]);
    await rig.close();

    // The broker refuses the board's password (CONNACK 4): it retries, and prints nothing secret.
    let refused = 0;
    rig = await startRig({
      board: "pico",
      modem: "sim800",
      boot: false,
      config: { broker: { host: "broker.example", port: 1883, username: SECRETS.brokerUser, password: SECRETS.brokerPassword } },
      aedes: {
        authenticate: (_c, user, _pw, done) => {
          if (user === SECRETS.brokerUser) {
            refused++;
            return done(Object.assign(new Error("bad"), { returnCode: 4 }) as never, null);
          }
          done(null, true);
        },
      },
    });
    rig.boot();
    await rig.waitFor(() => refused >= 2, "two refused CONNECTs", { timeoutMs: 600_000 });
    expect(rig.received("led/status")).toEqual([]);
    expect(rig.leakedSecrets(), rig.vb.console.join("\n")).toEqual([]);
    expect(rig.problems(), rig.diagnostics()).toEqual([]);
  });
});
