/**
 * The SIMCom LTE simulator dialect (SIM7600 / A7670) on its own: raw bytes in,
 * the module's framing out — concatenated command lines, the "RECV FROM:" line
 * before a pushed "+IPD<len>" (AT+CIPSRIP), and the SSL service (AT+CCH*) over a
 * REAL TLS client, against loopback echo servers (plain and TLS) as the far end.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import net from "node:net";
import tls from "node:tls";
import { Sim7600Sim, type Sim7600SimOptions } from "../../scripts/simulators/modem-sim/sim7600";
import { testCertificate } from "../support/tls";
import { collectOutput } from "../support/sim-output";

const echo = (s: net.Socket) => {
  s.on("data", (d) => (d.toString() == "bye" ? s.end() : s.write(d)));
  s.on("error", () => {});
};
let plain: net.Server;
let secure: tls.Server;
const ports = { plain: 0, tls: 0 };
const sims: Sim7600Sim[] = [];

beforeAll(async () => {
  const c = testCertificate();
  plain = net.createServer(echo);
  secure = tls.createServer({ cert: c.certPem, key: c.keyPem, minVersion: "TLSv1.2" }, echo);
  secure.on("tlsClientError", () => {});
  await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
  await new Promise<void>((r) => secure.listen(0, "127.0.0.1", r));
  ports.plain = (plain.address() as net.AddressInfo).port;
  ports.tls = (secure.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise<void>((r) => plain.close(() => r()));
  await new Promise<void>((r) => secure.close(() => r()));
});
afterEach(() => {
  for (const s of sims.splice(0)) s.close();
});

/** A registered sim ("tls.example" is the TLS echo server, any other host the plain one), output collected. */
function make(opts: Sim7600SimOptions = {}) {
  const sim = new Sim7600Sim({ regPolls: 0, hostMap: (host) => ({ host: "127.0.0.1", port: host == "tls.example" ? ports.tls : ports.plain }), ...opts });
  sims.push(sim);
  const { waitFor, say, out } = collectOutput(sim);
  /** A command and its answer up to `end`. */
  const ask = async (line: string, end = "OK\r\n") => {
    say(line);
    return waitFor(end);
  };
  return { sim, say, ask, waitFor, out };
}

/** A sim past ATE0, registered (one AT+CEREG? poll). */
async function ready(opts: Sim7600SimOptions = {}) {
  const m = make(opts);
  await m.ask("ATE0");
  await m.ask("AT+CEREG?");
  return m;
}

describe("SIM7600 simulator dialect: command lines and the TCP/IP service", () => {
  it("concatenated lines: each command's answers, one OK; an error stops the line", async () => {
    const m = await ready();
    expect(await m.ask("AT+CPIN?;+CSQ")).toBe("\r\n+CPIN: READY\r\n\r\n+CSQ: 20,99\r\n\r\nOK\r\n");
    expect(await m.ask("AT+CEREG?;+CGREG?")).toBe("\r\n+CEREG: 0,1\r\n\r\n+CGREG: 0,1\r\n\r\nOK\r\n");
    // set commands too, with a ";" inside quotes kept
    expect(await m.ask('AT+CGDCONT=1,"IP","in;ternet";+CGAUTH=1,1,"pw","me"')).toBe("\r\nOK\r\n");
    expect(m.sim.cgdcont).toEqual(["1", "IP", "in;ternet"]);
    expect(m.sim.cgauth).toEqual(["1", "1", "pw", "me"]);
    // the second command fails: its ERROR ends the line, the third never runs
    expect(await m.ask("AT+CSQ;+BOGUS;+CIPSRIP=0", "ERROR\r\n")).toBe("\r\n+CSQ: 20,99\r\n\r\nERROR\r\n");
    expect(m.sim.srip).toBe(1);
    // a +CME ERROR too
    const noSim = await ready({ sim: "none" });
    expect(await noSim.ask("AT+CPIN?;+CSQ", "ERROR: 10\r\n")).toBe("\r\n+CME ERROR: 10\r\n");
  });

  it('pushed data: "RECV FROM:<ip>:<port>" before "+IPD<len>" by default, none after AT+CIPSRIP=0', async () => {
    const m = await ready();
    expect(await m.ask("AT+CIPSRIP?")).toBe("\r\n+CIPSRIP: 1\r\n\r\nOK\r\n");
    await m.ask("AT+NETOPEN", "+NETOPEN: 0\r\n");
    expect(await m.ask('AT+CIPOPEN=0,"TCP","echo.example",7', "+CIPOPEN: 0,0\r\n")).toBe("\r\nOK\r\n\r\n+CIPOPEN: 0,0\r\n");
    await m.ask("AT+CIPSEND=0,5", "> ");
    m.sim.receive("hello");
    expect(await m.waitFor("hello")).toBe("\r\nOK\r\n\r\n+CIPSEND: 0,5,5\r\n\r\nRECV FROM:echo.example:7\r\n+IPD5\r\nhello");
    expect(await m.ask("AT+CIPSRIP=0")).toBe("\r\nOK\r\n");
    await m.ask("AT+CIPSEND=0,4", "> ");
    m.sim.receive("\r\nOK");
    expect(await m.waitFor("+IPD4\r\n\r\nOK")).toBe("\r\nOK\r\n\r\n+CIPSEND: 0,4,4\r\n\r\n+IPD4\r\n\r\nOK");
    // a reboot restores the default
    m.sim.reboot();
    await m.waitFor("RDY\r\n");
    expect(m.sim.srip).toBe(1);
  });
});

describe("SIM7600 simulator dialect: the SSL service (AT+CCH*)", () => {
  it("start, session config, TLS open, send, pushed +CCHRECV, peer close, stop", async () => {
    const m = await ready();
    // not started yet: AT+CCHSTOP and AT+CCHOPEN answer ERROR
    expect(await m.ask("AT+CCHSTOP", "ERROR\r\n")).toBe("\r\nERROR\r\n");
    expect(await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "ERROR\r\n")).toBe("\r\nERROR\r\n");
    expect(await m.ask("AT+CCHSTART", "+CCHSTART: 0\r\n")).toBe("\r\nOK\r\n\r\n+CCHSTART: 0\r\n");
    expect(m.sim.sslStarted).toBe(true);
    // already started
    expect(await m.ask("AT+CCHSTART", "ERROR\r\n")).toBe("\r\nERROR\r\n");
    expect(await m.ask("AT+CCHSSLCFG=0,0")).toBe("\r\nOK\r\n");
    expect(await m.ask('AT+CSSLCFG="sslversion",0,4')).toBe("\r\nOK\r\n");
    expect(await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,0\r\n")).toBe("\r\nOK\r\n\r\n+CCHOPEN: 0,0\r\n");
    expect(m.sim.links().map((l) => l.tls)).toEqual([true]);
    expect(m.sim.openSessions()).toEqual([0]);
    // the session is in use
    expect(await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "ERROR\r\n")).toBe("\r\nERROR\r\n");
    expect(await m.ask("AT+CCHSEND=0,8", "> ")).toBe("> ");
    m.sim.receive("\r\n+IPD\x00\xff");
    expect(await m.waitFor("\x00\xff")).toBe("\r\nOK\r\n\r\n+CCHRECV: DATA,0,8\r\n\r\n+IPD\x00\xff");
    // with AT+CCHSET=1 a send reports "+CCHSEND: <s>,0" after its OK
    expect(await m.ask("AT+CCHSET=1,0")).toBe("\r\nOK\r\n");
    await m.ask("AT+CCHSEND=0,3", "> ");
    m.sim.receive("bye");
    expect(await m.waitFor("+CCH_PEER_CLOSED: 0\r\n")).toMatch(/^\r\nOK\r\n\r\n\+CCHSEND: 0,0\r\n(\r\n\+CCHRECV: DATA,0,3\r\nbye)?\r\n\+CCH_PEER_CLOSED: 0\r\n$/);
    expect(m.sim.openSessions()).toEqual([]);
    expect(await m.ask("AT+CCHSEND=0,3", "ERROR\r\n")).toBe("\r\nERROR\r\n");
    expect(await m.ask("AT+CCHCLOSE=0", "ERROR\r\n")).toBe("\r\nERROR\r\n");
    // open again, close it ourselves, stop the service
    await m.ask('AT+CCHOPEN=1,"tls.example",8883', "+CCHOPEN: 1,0\r\n");
    expect(await m.ask("AT+CCHCLOSE=1", "+CCHCLOSE: 1,0\r\n")).toBe("\r\nOK\r\n\r\n+CCHCLOSE: 1,0\r\n");
    await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,0\r\n");
    expect(await m.ask("AT+CCHSTOP", "+CCHSTOP: 0\r\n")).toBe("\r\nOK\r\n\r\n+CCHSTOP: 0\r\n");
    expect([m.sim.sslStarted, m.sim.openSessions(), m.sim.links()]).toEqual([false, [], []]);
  });

  it('a failed handshake ends the open "+CCHOPEN: <s>,15", a failed TCP connect "+CCHOPEN: <s>,14"; the next open works', async () => {
    const m = await ready();
    await m.ask("AT+CCHSTART", "+CCHSTART: 0\r\n");
    // TLS against a peer that speaks no TLS (the plain echo server answers the ClientHello with itself)
    expect(await m.ask('AT+CCHOPEN=0,"plain.example",7,2', "+CCHOPEN: 0,")).toBe("\r\nOK\r\n\r\n+CCHOPEN: 0,");
    expect(await m.waitFor("\r\n")).toBe("15\r\n");
    // a TLS version the server refuses
    m.sim.tls = { maxVersion: "TLSv1.1", minVersion: "TLSv1" };
    await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,");
    expect(await m.waitFor("\r\n")).toBe("15\r\n");
    m.sim.tls = {};
    m.sim.fault.refuseLink = true;
    await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,");
    expect(await m.waitFor("\r\n")).toBe("14\r\n");
    m.sim.fault.refuseLink = false;
    await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,0\r\n");
    // client type 1: plain TCP through the SSL service
    await m.ask('AT+CCHOPEN=1,"plain.example",7,1', "+CCHOPEN: 1,0\r\n");
    expect(m.sim.links().map((l) => l.tls)).toEqual([true, false]);
  });

  it('sslResultFirst: "+CCHSTART: 0" / "+CCHSTOP: 0" before OK (the manual\'s other order)', async () => {
    const m = await ready({ sslResultFirst: true });
    expect(await m.ask("AT+CCHSTART")).toBe("\r\n+CCHSTART: 0\r\n\r\nOK\r\n");
    expect(await m.ask("AT+CCHSTOP")).toBe("\r\n+CCHSTOP: 0\r\n\r\nOK\r\n");
  });

  it("AT+CCHSTART fails without registration, with a wrong APN, or by the knob", async () => {
    const unregistered = await ready({ regStat: 0 });
    expect(await unregistered.ask("AT+CCHSTART", "+CCHSTART: 9\r\n")).toBe("\r\nOK\r\n\r\n+CCHSTART: 9\r\n");
    const m = await ready({ apn: "internet" });
    await m.ask('AT+CGDCONT=1,"IP","wrong"');
    await m.ask("AT+CCHSTART", "+CCHSTART: 9\r\n");
    await m.ask('AT+CGDCONT=1,"IP","internet"');
    m.sim.cchstartErrors = 1;
    m.sim.cchstartErrorCode = 3;
    await m.ask("AT+CCHSTART", "+CCHSTART: 3\r\n");
    expect(m.sim.sslStarted).toBe(false);
    await m.ask("AT+CCHSTART", "+CCHSTART: 0\r\n");
    expect(m.sim.sslStarted).toBe(true);
  });

  it('network loss: "+CCH_PEER_CLOSED" per session and "+CCH: CCH STOP"; a reboot or a power down ends the service too', async () => {
    const m = await ready();
    await m.ask("AT+CCHSTART", "+CCHSTART: 0\r\n");
    await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,0\r\n");
    m.sim.netDown();
    expect(await m.waitFor("CCH STOP\r\n")).toBe("\r\n+CCH_PEER_CLOSED: 0\r\n\r\n+CCH: CCH STOP\r\n");
    expect([m.sim.sslStarted, m.sim.links()]).toEqual([false, []]);
    expect(await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "ERROR\r\n")).toBe("\r\nERROR\r\n");
    await m.ask("AT+CCHSTART", "+CCHSTART: 0\r\n");
    await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,0\r\n");
    m.sim.reboot();
    await m.waitFor("RDY\r\n");
    expect([m.sim.sslStarted, m.sim.links(), m.sim.openSessions()]).toEqual([false, [], []]);
    await m.waitFor("PB DONE\r\n");
    await m.ask("ATE0");
    await m.ask("AT+CEREG?");
    await m.ask("AT+CCHSTART", "+CCHSTART: 0\r\n");
    await m.ask('AT+CCHOPEN=0,"tls.example",8883,2', "+CCHOPEN: 0,0\r\n");
    m.sim.powerDown();
    await m.waitFor("NORMAL POWER DOWN\r\n");
    expect([m.sim.sslStarted, m.sim.links()]).toEqual([false, []]);
  });
});
