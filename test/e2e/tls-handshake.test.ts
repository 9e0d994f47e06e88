/**
 * A TLS handshake that fails at the modem ends in a retry, never in a stuck
 * program. The broker's TLS listener wants TLS 1.3 and the simulated module
 * offers at most TLS 1.2 — a real handshake failure between node:tls and
 * Mosquitto (as with a SIM800, whose TLS is older than most brokers accept).
 * The modem reports it in each of its shapes: ESP8266 ERROR (then CLOSED) or a
 * later SEND FAIL; SIM800 CONNECT FAIL, CLOSE OK, ERROR or a later SEND FAIL;
 * SIM7600 "+CCHOPEN: 0,15" (its SSL service's handshake error).
 * The built firmware must try again with the session's back-off (fake clock),
 * and once the module can speak TLS 1.3 (the test widens its profile) the LED
 * obeys.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BROKER_HOST, BROKER_TLS_PORT, SECRETS, startRig, type Rig } from "../support/e2e-rig";
import { startMosquitto, type RunningBroker } from "../support/brokers";
import { testCertificate } from "../support/tls";

const PHONE = { username: "phone", password: "phone-pw-1" };
const TLS_BROKER = { host: BROKER_HOST, port: BROKER_TLS_PORT, tls: true, username: SECRETS.brokerUser, password: SECRETS.brokerPassword };

let broker: RunningBroker;
let rig: Rig | undefined;

beforeAll(async () => {
  const c = testCertificate();
  broker = await startMosquitto({
    users: { [SECRETS.brokerUser]: SECRETS.brokerPassword, [PHONE.username]: PHONE.password },
    tls: { cert: c.cert, key: c.key, version: "tlsv1.3" },
  });
});
afterAll(async () => {
  await broker?.stop();
});
afterEach(async () => {
  await rig?.close();
  rig = undefined;
});

const CASES = [
  ["nucleo-f401re", "esp8266", "error", /^failed connect ERROR$/],
  ["pico", "esp8266", "send-fail", /^failed send SEND FAIL$/],
  ["nucleo-f401re", "sim800", "connect-fail", /^joined CONNECT FAIL$/],
  ["pico", "sim800", "close-ok", /^joined CLOSE OK$/],
  ["original", "sim800", "error", /^failed ERROR$/],
  ["discovery-f4", "sim800", "send-fail", /^joined SEND FAIL$/],
  // one shape only (sslFail is the SIM800's and ESP8266's knob)
  ["pico", "sim7600", "cchopen", /^failed \+CCHOPEN: 0,15$/],
] as const;

describe("a failed TLS handshake at the modem", () => {
  for (const [board, modem, shape, report] of CASES) {
    it(`${board}-${modem}, shown as ${shape}: retried with back-off, then the LED obeys`, async () => {
      const simLog: string[] = [];
      rig = await startRig({
        board, modem, broker, phoneAuth: PHONE, boot: false,
        config: { broker: TLS_BROKER },
        sim: { tls: { maxVersion: "TLSv1.2" }, sslFail: shape, log: (s: string) => simLog.push(s) },
      });
      const r = rig;
      r.boot();
      const failures = () => r.vb.console.filter((l) => report.test(l.trim())).length;
      await r.waitFor(() => failures() >= 3, `three failed handshakes (${report})`, { timeoutMs: 300_000 });
      // they were real TLS failures: Mosquitto refused the module's TLS 1.2
      expect(simLog.filter((l) => /ended: tls: /.test(l) || /SSL handshake had failed: tls: /.test(l)).length).toBeGreaterThanOrEqual(3);
      expect(simLog.join("\n")).toMatch(/PROTOCOL_VERSION|UNSUPPORTED_PROTOCOL|alert/i);
      // retries with the session's back-off: never two connects within 0.5 s, and spreading out
      const tries = r.wire.filter((e) => e.dir === "board>" && /AT\+CIPSTART|AT\+CCHOPEN/.test(e.bytes)).map((e) => e.t);
      expect(tries.length).toBeGreaterThanOrEqual(3);
      const gaps = tries.slice(1).map((t, i) => t - tries[i]);
      for (const g of gaps) expect(g, `gaps ${gaps.join(", ")} ms`).toBeGreaterThanOrEqual(500);
      expect(Math.max(...gaps), `gaps ${gaps.join(", ")} ms`).toBeGreaterThan(Math.min(...gaps));
      expect(r.received("led/status")).toEqual([]);
      // the module learns TLS 1.3 (say, a firmware update): the next try gets through
      r.sim.tls = {};
      await r.waitOnline(0, { timeoutMs: 300_000 });
      await r.command("on");
      expect(r.lit()).toBe(true);
      expect(r.problems(), r.diagnostics()).toEqual([]);
    });
  }
});
