/**
 * The ESP8266 simulator dialect on its own: raw bytes in, the AT firmware's
 * exact framing out (echo, blank lines, the "> " prompt, +IPD frames), against
 * a loopback TCP echo server as the far end.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import { Esp8266Sim, atParams } from "../../scripts/simulators/modem-sim/esp8266";
import { collectOutput } from "../support/sim-output";

let server: net.Server;
let port = 0;
const sims: Esp8266Sim[] = [];

beforeAll(async () => {
  server = net.createServer((s) => {
    s.on("data", (d) => (d.toString() == "bye" ? s.end() : s.write(d)));
    s.on("error", () => {});
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as net.AddressInfo).port;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));
afterEach(() => {
  for (const s of sims.splice(0)) s.close();
});

/** A sim with its output collected; say() sends a line and waits for `until` in the output. */
function make(opts: ConstructorParameters<typeof Esp8266Sim>[0] = {}) {
  const sim = new Esp8266Sim({ ssid: "lab", password: "pw", hosts: ["echo.local"], hostMap: () => ({ host: "127.0.0.1", port }), ...opts });
  sims.push(sim);
  const { take, waitFor, say } = collectOutput(sim);
  return { sim, take, waitFor, say };
}

describe("ESP8266 simulator dialect", () => {
  it("echoes until ATE0 and frames replies as the part does", async () => {
    const m = make();
    m.say("AT");
    expect(await m.waitFor("OK\r\n")).toBe("AT\r\r\n\r\nOK\r\n");
    m.say("ATE0");
    expect(await m.waitFor("OK\r\n")).toBe("ATE0\r\r\n\r\nOK\r\n");
    m.say("AT");
    expect(await m.waitFor("OK\r\n")).toBe("\r\nOK\r\n");
    m.say("AT+BOGUS");
    expect(await m.waitFor("ERROR\r\n")).toBe("\r\nERROR\r\n");
  });

  it("AT+RST: OK, boot noise, ready, echo back on", async () => {
    const m = make();
    m.say("ATE0");
    await m.waitFor("OK\r\n");
    m.say("AT+RST");
    const boot = await m.waitFor("ready\r\n");
    expect(boot.startsWith("\r\nOK\r\n")).toBe(true);
    expect(boot.length).toBeGreaterThan(20); // noise between OK and ready
    m.say("AT");
    expect(await m.waitFor("OK\r\n")).toBe("AT\r\r\n\r\nOK\r\n");
  });

  it("AT+CWJAP: checks the unescaped credentials and answers +CWJAP:<n> FAIL", async () => {
    const m = make({ ssid: 'a,b"c\\d', password: "p,w" });
    m.say("ATE0");
    await m.waitFor("OK\r\n");
    m.say('AT+CWJAP="a\\,b\\"c\\\\d","nope"');
    expect(await m.waitFor("FAIL\r\n")).toBe("\r\n+CWJAP:2\r\n\r\nFAIL\r\n");
    m.say('AT+CWJAP="other","p\\,w"');
    expect(await m.waitFor("FAIL\r\n")).toBe("\r\n+CWJAP:3\r\n\r\nFAIL\r\n");
    m.say('AT+CWJAP="a\\,b\\"c\\\\d","p\\,w"');
    expect(await m.waitFor("OK\r\n")).toBe("WIFI CONNECTED\r\nWIFI GOT IP\r\n\r\nOK\r\n");
    expect(m.sim.joins).toEqual([['a,b"c\\d', "nope"], ["other", "p,w"], ['a,b"c\\d', "p,w"]]);
    expect(m.sim.commands.filter((c) => c.includes("p\\,w"))).toEqual([]); // passwords masked
  });

  it("CIPSTART: no ip before joining, DNS Fail, CONNECT OK, ALREADY CONNECTED", async () => {
    const m = make();
    m.say("ATE0");
    await m.waitFor("OK\r\n");
    m.say('AT+CIPSTART="TCP","echo.local",1');
    expect(await m.waitFor("ERROR\r\n")).toBe("\r\nno ip\r\n\r\nERROR\r\n");
    m.say('AT+CWJAP="lab","pw"');
    await m.waitFor("OK\r\n");
    m.say('AT+CIPSTART="TCP","nowhere.local",1883');
    expect(await m.waitFor("ERROR\r\n")).toBe("\r\nDNS Fail\r\n\r\nERROR\r\n");
    m.say('AT+CIPSTART="TCP","echo.local",1883');
    expect(await m.waitFor("OK\r\n")).toBe("\r\nCONNECT\r\n\r\nOK\r\n");
    m.say('AT+CIPSTART="TCP","echo.local",1883');
    expect(await m.waitFor("ERROR\r\n")).toBe("\r\nALREADY CONNECTED\r\n\r\nERROR\r\n");
    m.say("AT+CIPMUX=1");
    expect(await m.waitFor("ERROR\r\n")).toBe("\r\nlink is builded\r\n\r\nERROR\r\n");
  });

  it("CIPSEND: OK and \"> \", n raw bytes, Recv/SEND OK; echoed data comes back as +IPD; CLOSED", async () => {
    const m = make();
    m.say("ATE0");
    m.say('AT+CWJAP="lab","pw"');
    await m.waitFor("GOT IP\r\n\r\nOK\r\n");
    m.say('AT+CIPSTART="TCP","echo.local",1883');
    await m.waitFor("CONNECT\r\n\r\nOK\r\n");
    m.take();
    m.say("AT+CIPSEND=8");
    expect(await m.waitFor("> ")).toBe("\r\nOK\r\n> ");
    m.sim.receive("\r\nOK\r\n\u0000\u00ff");
    expect(await m.waitFor("SEND OK\r\n")).toBe("\r\nRecv 8 bytes\r\n\r\nSEND OK\r\n");
    expect(await m.waitFor("\u00ff")).toBe("\r\n+IPD,8:\r\nOK\r\n\u0000\u00ff");
    expect(m.sim.violations).toEqual([]);
    m.say("AT+CIPSEND=3");
    await m.waitFor("> ");
    m.sim.receive("bye");
    await m.waitFor("SEND OK\r\n");
    expect(await m.waitFor("CLOSED\r\n")).toBe("CLOSED\r\n");
    m.say("AT+CIPSEND=3");
    expect(await m.waitFor("ERROR\r\n")).toBe("\r\nlink is not valid\r\n\r\nERROR\r\n");
    m.say("AT+CIPCLOSE");
    expect(await m.waitFor("ERROR\r\n")).toBe("\r\nERROR\r\n");
  });

  it("refused link: ERROR then CLOSED; AT+CIPCLOSE: CLOSED OK; net down: WIFI DISCONNECT, CLOSED", async () => {
    const m = make();
    m.say("ATE0");
    m.say('AT+CWJAP="lab","pw"');
    await m.waitFor("GOT IP\r\n\r\nOK\r\n");
    m.sim.fault.refuseLink = true;
    m.say('AT+CIPSTART="TCP","echo.local",1883');
    expect(await m.waitFor("CLOSED\r\n")).toBe("\r\nERROR\r\n\r\nCLOSED\r\n");
    m.sim.fault.refuseLink = false;
    m.say('AT+CIPSTART="TCP","echo.local",1883');
    await m.waitFor("CONNECT\r\n\r\nOK\r\n");
    m.say("AT+CIPCLOSE");
    expect(await m.waitFor("OK\r\n")).toBe("\r\nCLOSED\r\n\r\nOK\r\n");
    m.say('AT+CIPSTART="TCP","echo.local",1883');
    await m.waitFor("CONNECT\r\n\r\nOK\r\n");
    m.sim.netDown();
    expect(await m.waitFor("CLOSED\r\n")).toBe("WIFI DISCONNECT\r\nCLOSED\r\n");
    expect(m.sim.joined).toBe(false);
  });

  it("re-joins the saved AP by itself after a reboot", async () => {
    const m = make();
    m.say("ATE0");
    m.say('AT+CWJAP="lab","pw"');
    await m.waitFor("GOT IP\r\n\r\nOK\r\n");
    m.sim.reboot();
    await m.waitFor("ready\r\n");
    expect(await m.waitFor("WIFI GOT IP\r\n")).toBe("WIFI CONNECTED\r\nWIFI GOT IP\r\n");
    expect(m.sim.joined).toBe(true);
  });

  describe("multiple connections (AT+CIPMUX=1)", () => {
    /** Echo off, joined, CIPMUX=1. */
    async function muxReady(opts: Parameters<typeof make>[0] = {}) {
      const m = make(opts);
      m.say("ATE0");
      m.say('AT+CWJAP="lab","pw"');
      await m.waitFor("GOT IP\r\n\r\nOK\r\n");
      m.say("AT+CIPMUX=1");
      expect(await m.waitFor("OK\r\n")).toBe("\r\nOK\r\n");
      return m;
    }

    it("CIPSTART=<id>: \"<id>,CONNECT\" OK; the id form is ERROR in mode 0 and the single form ERROR in mode 1", async () => {
      const m = make();
      m.say("ATE0");
      m.say('AT+CWJAP="lab","pw"');
      await m.waitFor("GOT IP\r\n\r\nOK\r\n");
      m.take();
      m.say('AT+CIPSTART=0,"TCP","echo.local",1883');
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nERROR\r\n");
      m.say("AT+CIPMUX=1");
      await m.waitFor("OK\r\n");
      m.say('AT+CIPSTART="TCP","echo.local",1883');
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nERROR\r\n");
      m.say('AT+CIPSTART=3,"TCP","echo.local",1883');
      expect(await m.waitFor("OK\r\n")).toBe("\r\n3,CONNECT\r\n\r\nOK\r\n");
      m.say('AT+CIPSTART=3,"TCP","echo.local",1883');
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nALREADY CONNECTED\r\n\r\nERROR\r\n");
      m.say('AT+CIPSTART=5,"TCP","echo.local",1883');
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nERROR\r\n"); // ids are 0..4
      m.say("AT+CIPMUX=0");
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nlink is builded\r\n\r\nERROR\r\n");
      expect(m.sim.mux).toBe(1);
    });

    it("two links side by side: CIPSEND=<id>,<n> goes to that link, its echo comes back as +IPD,<id>,<len>", async () => {
      const m = await muxReady();
      m.say('AT+CIPSTART=0,"TCP","echo.local",1883');
      await m.waitFor("0,CONNECT\r\n\r\nOK\r\n");
      m.say('AT+CIPSTART=1,"TCP","echo.local",1884');
      await m.waitFor("1,CONNECT\r\n\r\nOK\r\n");
      m.say("AT+CIPSEND=1,5");
      expect(await m.waitFor("> ")).toBe("\r\nOK\r\n> ");
      m.sim.receive("one\r\n");
      expect(await m.waitFor("SEND OK\r\n")).toBe("\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n");
      expect(await m.waitFor("one\r\n")).toBe("\r\n+IPD,1,5:one\r\n");
      m.say("AT+CIPSEND=0,3");
      await m.waitFor("> ");
      m.sim.receive("\u0000\u00ff0");
      await m.waitFor("SEND OK\r\n");
      expect(await m.waitFor("\u00ff0")).toBe("\r\n+IPD,0,3:\u0000\u00ff0");
      m.say("AT+CIPSTATUS");
      expect(await m.waitFor("OK\r\n")).toBe(
        '\r\nSTATUS:3\r\n\r\n+CIPSTATUS:0,"TCP","echo.local",1883,4001,0\r\n\r\n+CIPSTATUS:1,"TCP","echo.local",1884,4002,0\r\n\r\nOK\r\n',
      );
      m.say("AT+CIPSEND=2,3");
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nlink is not valid\r\n\r\nERROR\r\n");
      m.say("AT+CIPSEND=3");
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nERROR\r\n"); // no id in mode 1
      expect(m.sim.violations).toEqual([]);
    });

    it("AT+CIPDINFO=1: +IPD,<id>,<len>,<remote IP>,<remote port>:", async () => {
      const m = await muxReady();
      m.say("AT+CIPDINFO=1");
      await m.waitFor("OK\r\n");
      m.say('AT+CIPSTART=0,"TCP","127.0.0.1",1883');
      await m.waitFor("0,CONNECT\r\n\r\nOK\r\n");
      m.say("AT+CIPSEND=0,2");
      await m.waitFor("> ");
      m.sim.receive("hi");
      await m.waitFor("SEND OK\r\n");
      expect(await m.waitFor("hi")).toBe("\r\n+IPD,0,2,127.0.0.1,1883:hi");
    });

    it("remote close: \"<id>,CLOSED\"; CIPCLOSE=<id>: \"<id>,CLOSED\" OK; CIPCLOSE=5 closes all; refused: ERROR \"<id>,CLOSED\"", async () => {
      const m = await muxReady();
      m.say('AT+CIPSTART=2,"TCP","echo.local",1883');
      await m.waitFor("2,CONNECT\r\n\r\nOK\r\n");
      m.say("AT+CIPSEND=2,3");
      await m.waitFor("> ");
      m.sim.receive("bye");
      await m.waitFor("SEND OK\r\n");
      expect(await m.waitFor("CLOSED\r\n")).toBe("2,CLOSED\r\n");
      expect(m.sim.muxLinks[2]).toBeNull();
      m.say("AT+CIPCLOSE=2");
      expect(await m.waitFor("ERROR\r\n")).toBe("\r\nERROR\r\n");
      m.say('AT+CIPSTART=0,"TCP","echo.local",1883');
      await m.waitFor("OK\r\n");
      m.say("AT+CIPCLOSE=0");
      expect(await m.waitFor("OK\r\n")).toBe("\r\n0,CLOSED\r\n\r\nOK\r\n");
      m.say('AT+CIPSTART=1,"TCP","echo.local",1883');
      await m.waitFor("OK\r\n");
      m.say('AT+CIPSTART=4,"TCP","echo.local",1883');
      await m.waitFor("OK\r\n");
      m.say("AT+CIPCLOSE=5");
      expect(await m.waitFor("OK\r\n")).toBe("\r\n1,CLOSED\r\n\r\n4,CLOSED\r\n\r\nOK\r\n");
      m.sim.fault.refuseLink = true;
      m.say('AT+CIPSTART=1,"TCP","echo.local",1883');
      expect(await m.waitFor("CLOSED\r\n")).toBe("\r\nERROR\r\n\r\n1,CLOSED\r\n");
      m.sim.fault.refuseLink = false;
      // no link open again: the mode may change
      m.say("AT+CIPMUX=0");
      expect(await m.waitFor("OK\r\n")).toBe("\r\nOK\r\n");
    });

    it("WiFi lost: WIFI DISCONNECT, then \"<id>,CLOSED\" per link; a reset goes back to mode 0", async () => {
      const m = await muxReady();
      m.say('AT+CIPSTART=0,"TCP","echo.local",1883');
      await m.waitFor("OK\r\n");
      m.say('AT+CIPSTART=3,"TCP","echo.local",1883');
      await m.waitFor("OK\r\n");
      m.sim.netDown();
      expect(await m.waitFor("3,CLOSED\r\n")).toBe("WIFI DISCONNECT\r\n0,CLOSED\r\n3,CLOSED\r\n");
      m.sim.reboot();
      await m.waitFor("ready\r\n");
      expect(m.sim.mux).toBe(0);
      expect(m.sim.dinfo).toBe(false);
    });

    it("AT+CIFSR: the station's IP (0.0.0.0 before joining) and MAC", async () => {
      const m = make();
      m.say("ATE0");
      await m.waitFor("OK\r\n");
      m.say("AT+CIFSR");
      expect(await m.waitFor("OK\r\n")).toMatch(/^\r\n\+CIFSR:STAIP,"0\.0\.0\.0"\r\n\r\n\+CIFSR:STAMAC,"[0-9a-f:]{17}"\r\n\r\nOK\r\n$/);
      m.say('AT+CWJAP="lab","pw"');
      await m.waitFor("GOT IP\r\n\r\nOK\r\n");
      m.say("AT+CIFSR");
      const joined = await m.waitFor("OK\r\n");
      expect(joined).toMatch(/STAIP,"\d+\.\d+\.\d+\.\d+"/);
      expect(joined).not.toContain("0.0.0.0");
    });
  });

  it("splits AT parameters with the firmware's escapes", () => {
    expect(atParams('"a\\,b","c\\"d\\\\",12')).toEqual(["a,b", 'c"d\\', "12"]);
    expect(atParams('"TCP","h",1883')).toEqual(["TCP", "h", "1883"]);
  });
});
