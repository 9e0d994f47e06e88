/**
 * TLS end to end: the BUILT firmware on the virtual board, with led.json's
 * "broker": { "tls": true, "port": 8883, username, password }, talks to Mosquitto's
 * TLS listener (certificate made by openssl at test time) through the modem
 * simulator, which runs a real TLS client for the modem's SSL link — the ESP8266's
 * AT+CIPSTART="SSL", the SIM800's AT+CIPSSL=1 and the SIM7600's SSL service
 * (AT+CCHSTART, AT+CCHOPEN=0,...,2). The broker has a password file
 * and an ACL; the phone (MQTT.js) uses the plain listener with its own user.
 * Also: a wrong password is refused, reported once per try and retried with the
 * long back-off (fake clock), and plain 1883 is untouched by all this.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BROKER_HOST, BROKER_TLS_PORT, SECRETS, startRig, type Rig } from "../support/e2e-rig";
import { startMosquitto, type RunningBroker } from "../support/brokers";
import { testCertificate } from "../support/tls";

const PHONE = { username: "phone", password: "phone-pw-1" };
// The board may use its own topics and nothing else; so may the phone.
const ACL = ["user board", "topic readwrite led", "topic readwrite led/#", "", "user phone", "topic readwrite led", "topic readwrite led/#", ""].join("\n");
const TLS_BROKER = { host: BROKER_HOST, port: BROKER_TLS_PORT, tls: true, username: SECRETS.brokerUser, password: SECRETS.brokerPassword };
const CASES = [["espruino-wifi", "esp8266"], ["pico", "sim800"]] as const;
/** The LED over TLS: every modem whose driver carries TLS. */
const TLS_CASES = [...CASES, ["pico", "sim7600"]] as const;

let broker: RunningBroker;
let rig: Rig | undefined;

beforeAll(async () => {
  const c = testCertificate();
  broker = await startMosquitto({
    users: { [SECRETS.brokerUser]: SECRETS.brokerPassword, [PHONE.username]: PHONE.password },
    acl: ACL,
    tls: { cert: c.cert, key: c.key },
  });
});
afterAll(async () => {
  await broker?.stop();
});
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});


describe("MQTT over TLS to Mosquitto (password file, ACL)", () => {
  for (const [board, modem] of TLS_CASES) {
    it(`${board}-${modem}: the LED obeys over the modem's TLS link`, async () => {
      const links: boolean[] = [];
      rig = await startRig({ board, modem, broker, phoneAuth: PHONE, config: { broker: TLS_BROKER } });
      const r = rig;
      // the link that carries the session is the simulator's TLS client
      links.push(...r.sim.links().map((l) => l.tls));
      expect(links).toEqual([true]);
      if (modem === "esp8266") {
        const c = r.commands("AT+CIPS");
        const start = c.indexOf(`AT+CIPSTART="SSL","${BROKER_HOST}",${BROKER_TLS_PORT}`);
        expect(start, c.join("\n")).toBeGreaterThan(0);
        // the 1.x buffer size goes first (the simulated module is a 1.x)
        expect(c.slice(0, start)).toContain("AT+CIPSSLSIZE=4096");
        expect(r.esp.sslSize).toBe(4096);
      } else if (modem === "sim7600") {
        // the SSL service, not the TCP/IP one: started, session 0 on SSL context 0, a TLS client (type 2)
        const c = r.commands("AT+CCH");
        const open = c.indexOf(`AT+CCHOPEN=0,"${BROKER_HOST}",${BROKER_TLS_PORT},2`);
        expect(open, c.join("\n")).toBeGreaterThan(0);
        expect(c.slice(0, open)).toEqual(["AT+CCHSTOP", "AT+CCHSTART", "AT+CCHSSLCFG=0,0"]);
        expect(r.commands().filter((x) => /NETOPEN|CIPOPEN/.test(x))).toEqual([]);
        expect(r.sim7600.sslStarted).toBe(true);
      } else {
        const c = r.commands("AT+CIP");
        const start = c.indexOf(`AT+CIPSTART="TCP","${BROKER_HOST}","${BROKER_TLS_PORT}"`);
        expect(start, c.join("\n")).toBeGreaterThan(0);
        expect(c[start - 1]).toBe("AT+CIPSSL=1");
      }
      await r.command("on");
      expect(r.lit()).toBe(true);
      await r.command("toggle");
      expect(r.lit()).toBe(false);
      expect(await r.retained("led/state")).toBe("off");
      // a dropped TLS link: the board connects again, over TLS again
      const mark = r.mark();
      r.sim.dropLink();
      await r.waitOnline(mark);
      expect(r.sim.links().map((l) => l.tls)).toEqual([true]);
      await r.command("1");
      expect(r.lit()).toBe(true);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("a wrong broker password over TLS", () => {
  for (const [board, modem] of TLS_CASES) {
    it(`${board}-${modem}: refused, reported once, retried 30–60 s apart (no hammering)`, async () => {
      rig = await startRig({
        board, modem, broker, phoneAuth: PHONE, boot: false,
        config: { broker: { ...TLS_BROKER, password: "not-the-password" } },
      });
      const r = rig;
      r.boot();
      await r.waitFor(() => r.openTimes().length >= 4, "four refused CONNECTs", { timeoutMs: 600_000 });
      const tries = r.openTimes();
      // every try was refused; the reason is said once (the app logs a reason once until a connection succeeds)
      expect(r.vb.console.filter((l) => /refused/.test(l))).toEqual(["mqtt refused: 5"]);
      // the session's back-off after a refusal 4/5: the longest (60 s), with jitter 30..60 s
      for (let i = 1; i < tries.length; i++) {
        const gap = tries[i] - tries[i - 1];
        expect(gap, `gap ${i}: ${gap} ms`).toBeGreaterThanOrEqual(30_000);
        expect(gap, `gap ${i}: ${gap} ms`).toBeLessThanOrEqual(75_000);
      }
      // five more minutes of board time: at most ten more tries
      const before = tries.length;
      await r.idle(300_000);
      expect(r.openTimes().length - before).toBeLessThanOrEqual(10);
      expect(r.received("led/status")).toEqual([]);
      expect(r.leakedSecrets(), r.vb.console.join("\n")).toEqual([]);
      expect(r.vb.console.join("\n")).not.toContain("not-the-password");
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});

describe("plain MQTT on 1883 is unchanged", () => {
  for (const [board, modem] of TLS_CASES) {
    it(`${board}-${modem}: no SSL command, a TCP link, the LED obeys`, async () => {
      rig = await startRig({ board, modem, broker, phoneAuth: PHONE, config: { broker: { ...TLS_BROKER, port: 1883, tls: false } } });
      const r = rig;
      expect(r.commands().filter((c) => /SSL|CCH/.test(c))).toEqual([]);
      const open = { esp8266: `AT+CIPSTART="TCP","${BROKER_HOST}",1883`, sim800: `AT+CIPSTART="TCP","${BROKER_HOST}","1883"`, sim7600: `AT+CIPOPEN=0,"TCP","${BROKER_HOST}",1883` }[modem];
      expect(r.commands(open.slice(0, open.indexOf("=")))[0]).toBe(open);
      expect(r.sim.links().map((l) => l.tls)).toEqual([false]);
      await r.command("on");
      expect(r.lit()).toBe(true);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});
