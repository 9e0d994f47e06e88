/**
 * The AT engine (src/at/engine.ts): framing, commands, URCs, timeouts, bounds.
 * Every stream scenario runs fed whole, one byte at a time, and in seeded
 * random chunk sizes, on a fake clock.
 */
import { describe, expect, it } from "vitest";
import { AtEngine, type AtCommand, type AtReply } from "../../src/at/engine";
import { FakeClock } from "../support/fake-clock";
import { ESP8266_URCS } from "../../src/modem/esp8266";
import { SIM800_URCS } from "../../src/modem/sim800";
import { prng as mulberry32 } from "../../scripts/simulators/modem-sim/core";


type Mode = "whole" | "bytes" | number; // number = seed for random chunks of 1..17
const MODES: Mode[] = ["whole", "bytes", 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];

function split(text: string, mode: Mode): string[] {
  if (mode === "whole") return [text];
  if (mode === "bytes") return text.split("");
  const r = mulberry32(mode);
  const out: string[] = [];
  for (let i = 0; i < text.length; ) {
    const n = 1 + Math.floor(r() * 17);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

type Ev = ["urc", string] | ["data", number, string];

class Rig {
  clock: FakeClock;
  writes: { text: string; fed: number }[] = [];
  logs: string[] = [];
  ev: Ev[] = [];
  replies: { cmd: string; reply: AtReply; at: number }[] = [];
  fed = 0;
  e: AtEngine;
  /** espruino: timer handles as on the board (small reused ids; clearing a fired or unknown one throws). */
  constructor(public mode: Mode = "whole", espruino = false) {
    this.clock = new FakeClock(1000, { espruino });
    this.e = new AtEngine({ write: (t) => this.writes.push({ text: t, fed: this.fed }) }, this.clock, (l) => this.logs.push(l));
    // both drivers' URC patterns, as each driver registers its own
    this.e.urcs = [...ESP8266_URCS, ...SIM800_URCS];
    this.e.onUrc = (l) => this.ev.push(["urc", l]);
    this.e.onData = (b, id) => {
      const last = this.ev[this.ev.length - 1];
      // merge the pieces of one frame (consecutive, same link)
      if (last && last[0] === "data" && last[1] === id) last[2] += b;
      else this.ev.push(["data", id, b]);
    };
  }
  feed(text: string): void {
    for (const c of split(text, this.mode)) {
      this.fed += c.length;
      expect(() => this.e.feed(c)).not.toThrow();
    }
  }
  send(cmd: string, extra: Partial<AtCommand> = {}): AtCommand {
    const c: AtCommand = {
      cmd,
      timeout: 1000,
      ...extra,
      done: (reply) => this.replies.push({ cmd, reply, at: this.clock.now() }),
    };
    this.e.send(c);
    return c;
  }
  get urcs(): string[] {
    return this.ev.filter((x) => x[0] === "urc").map((x) => x[1] as string);
  }
  get data(): string {
    return this.ev.filter((x) => x[0] === "data").map((x) => x[2]).join("");
  }
  get written(): string {
    return this.writes.map((w) => w.text).join("");
  }
  reply(i = 0): AtReply {
    return this.replies[i].reply;
  }
}

const label = (m: Mode) => (typeof m === "number" ? `seed ${m}` : m);

describe.each(MODES.map((m) => [label(m), m] as const))("framing, fed %s", (_name, mode) => {
  it("frames lines on \\r\\n and bare \\n, ignores empty lines, trims", () => {
    const r = new Rig(mode);
    r.feed("\r\nWIFI CONNECTED\r\n\nWIFI GOT IP\n\r\n\r\nhello world \r\n\r\n");
    expect(r.urcs).toEqual(["WIFI CONNECTED", "WIFI GOT IP", "hello world"]);
  });

  it("collects a command's lines and its final, dropping the echo", () => {
    const r = new Rig(mode);
    r.send("AT+GMR");
    expect(r.written).toBe("AT+GMR\r\n");
    r.feed("AT+GMR\r\r\nAT version:1.2.0.0\r\nSDK version:1.5.4\r\n\r\nOK\r\n");
    expect(r.replies).toHaveLength(1);
    expect(r.reply()).toEqual({ final: "OK", lines: ["AT version:1.2.0.0", "SDK version:1.5.4"] });
    expect(r.urcs).toEqual([]);
  });

  it("reads +IPD frames of all four header forms, payloads holding anything", () => {
    const r = new Rig(mode);
    const p1 = "a\r\nOK\r\n+IPD,3:x\r\n",
      p2 = "\r\n\r\nERROR\r\n",
      p3 = ">> \r\nSEND OK",
      p4 = "\x00\xff\x10\r";
    r.feed(`\r\n+IPD,${p1.length}:${p1}`);
    r.feed(`\r\nWIFI GOT IP\r\n+IPD,2,${p2.length}:${p2}`);
    r.feed(`+IPD,${p3.length},192.168.1.7,1883:${p3}\r\nCLOSED\r\n`);
    r.feed(`+IPD,4,${p4.length},10.0.0.1,80:${p4}+IPD,1,2:ok`);
    expect(r.ev).toEqual([
      ["data", -1, p1],
      ["urc", "WIFI GOT IP"],
      ["data", 2, p2],
      ["data", -1, p3],
      ["urc", "CLOSED"],
      ["data", 4, p4],
      ["data", 1, "ok"],
    ]);
  });

  it("reads the SIMCom LTE heads: a whole line \"+IPD<len>\" (TCP) or \"+CCHRECV: DATA,<id>,<len>\" (TLS), then <len> raw bytes", () => {
    const r = new Rig(mode);
    const p1 = "\r\nOK\r\n+IPD3\r\n> ",
      p2 = "+CCHRECV: DATA,0,2\r\n\x00",
      p3 = "\x00\xff";
    r.feed(`\r\n+IPD${p1.length}\r\n${p1}`);
    r.feed(`\r\nRECV FROM:10.0.0.2:1883\r\n+IPD${p3.length}\r\n${p3}`);
    r.feed(`\r\n+CCHRECV: DATA,0,${p2.length}\r\n${p2}\r\n+CCHRECV: DATA,1,2\r\nok\r\n+CCH_PEER_CLOSED: 0\r\n`);
    expect(r.ev).toEqual([
      ["data", -1, p1],
      ["urc", "RECV FROM:10.0.0.2:1883"],
      ["data", -1, p3],
      ["data", 0, p2],
      ["data", 1, "ok"],
      ["urc", "+CCH_PEER_CLOSED: 0"],
    ]);
  });

  it("a \"+IPD<len>\" head is a frame only once its line has ended; \"+IPD\" with other text is a line", () => {
    const r = new Rig(mode);
    r.feed("+IPD2");
    expect(r.ev).toEqual([]);
    r.feed("\r\nab+IPD 3\r\n+IPDx\r\n+IPD,4\r\n");
    expect(r.ev).toEqual([
      ["data", -1, "ab"],
      ["urc", "+IPD 3"],
      ["urc", "+IPDx"],
      ["urc", "+IPD,4"],
    ]);
  });

  it("reads two +IPD frames in one run, with and without line ends around them", () => {
    const r = new Rig(mode);
    r.feed("+IPD,3:abc+IPD,4:de\r\n\r\n+IPD,1:f");
    r.feed("\r\nready\r\n");
    expect(r.data).toBe("abcde\r\nf");
    expect(r.urcs).toEqual(["ready"]);
    // exactly <len> per frame: nothing after the last frame leaked into data
    expect(r.ev[r.ev.length - 1]).toEqual(["urc", "ready"]);
  });

  it("takes +IPD in the middle of another command's reply", () => {
    const r = new Rig(mode);
    r.send("AT+CWLAP");
    r.feed('+CWLAP:(3,"lab",-60)\r\n+IPD,7:OK\r\nX\r\n+CWLAP:(4,"x",-80)\r\n\r\nOK\r\n');
    expect(r.reply()).toEqual({ final: "OK", lines: ['+CWLAP:(3,"lab",-60)', '+CWLAP:(4,"x",-80)'] });
    expect(r.data).toBe("OK\r\nX\r\n");
  });

  it("SEND: writes the data only after '>', takes +IPD and URCs between '>' and SEND OK", () => {
    const r = new Rig(mode);
    r.send("AT+CIPSEND=4", { data: "AB\r\n" });
    expect(r.written).toBe("AT+CIPSEND=4\r\n");
    const before = r.fed;
    const s1 = "AT+CIPSEND=4\r\r\n\r\nOK\r\n> ";
    r.feed(s1);
    const dataWrites = r.writes.filter((w) => w.text === "AB\r\n");
    expect(dataWrites).toHaveLength(1);
    // the data went out only once every byte up to and including ">" had been fed
    expect(dataWrites[0].fed).toBeGreaterThanOrEqual(before + s1.indexOf(">") + 1);
    expect(r.replies).toHaveLength(0); // "OK" before the prompt does not end a data command
    r.feed("+IPD,5:> OK\r\r\nWIFI DISCONNECT\r\n\r\nRecv 4 bytes\r\n> \r\n\r\nSEND OK\r\n");
    expect(r.reply()).toEqual({ final: "SEND OK", lines: ["OK", "Recv 4 bytes"] });
    expect(r.data).toBe("> OK\r");
    expect(r.urcs).toEqual(["WIFI DISCONNECT"]);
    expect(r.writes.filter((w) => w.text === "AB\r\n")).toHaveLength(1); // a second ">" writes nothing
  });

  it("SEND: a noise line that starts with '>' is not the prompt; the real '> ' is", () => {
    const r = new Rig(mode);
    r.send("AT+CIPSEND=2", { data: "hi" });
    r.feed("\r\nOK\r\n>x%q\r\n>>\r\n");
    expect(r.writes.filter((w) => w.text === "hi")).toHaveLength(0);
    r.feed("> ");
    expect(r.writes.filter((w) => w.text === "hi")).toHaveLength(1);
    r.feed("\r\nSEND OK\r\n");
    expect(r.reply().final).toBe("SEND OK");
  });

  it("SEND: SIM800 prompt '\\r\\n> ' then SEND FAIL; a refused send never writes data", () => {
    const r = new Rig(mode);
    r.send("AT+CIPSEND=3", { data: "xyz" });
    r.send("AT+CIPSEND=2", { data: "no" });
    r.feed("\r\n> ");
    r.feed("\r\nSEND FAIL\r\n");
    expect(r.reply(0).final).toBe("SEND FAIL");
    r.feed("\r\nERROR\r\n> ");
    expect(r.reply(1).final).toBe("ERROR");
    expect(r.written).toBe("AT+CIPSEND=3\r\nxyzAT+CIPSEND=2\r\n");
  });

  it("sends URCs to onUrc mid-reply, and lets a command claim its own", () => {
    const r = new Rig(mode);
    r.send("AT+CREG?");
    r.send("AT+CSQ");
    r.send("", { finals: ["ready"], timeout: 5000 });
    r.send('AT+CIPSTART="TCP","h",1', { okNotFinal: true, finals: ["CONNECT OK", "CONNECT FAIL", "ALREADY CONNECT"] });
    r.feed("+CREG: 0,1\r\n+PDP: DEACT\r\n\r\nOK\r\n");
    r.feed("+CREG: 2\r\n+CSQ: 18,0\r\n0,CLOSED\r\n1, CLOSED\r\nbusy p...\r\nOK\r\n");
    r.feed("\r\nWIFI GOT IP\r\n\r\nready\r\n");
    r.feed("OK\r\n\r\nCONNECT OK\r\n");
    expect(r.replies.map((x) => x.reply)).toEqual([
      { final: "OK", lines: ["+CREG: 0,1"] },
      { final: "OK", lines: ["+CSQ: 18,0"] },
      { final: "ready", lines: [] },
      { final: "CONNECT OK", lines: ["OK"] },
    ]);
    expect(r.urcs).toEqual(["+PDP: DEACT", "+CREG: 2", "0,CLOSED", "1, CLOSED", "busy p...", "WIFI GOT IP"]);
  });
});

describe("unclaimed + lines", () => {
  it("a +XYZ line the command in flight does not name is unsolicited; one it names is its reply", () => {
    const r = new Rig();
    r.send("AT+CSQ");
    r.feed("+CFUN: 1\r\n+CSQ: 20,0\r\n+CPIN: READY\r\n\r\nOK\r\n");
    expect(r.reply()).toEqual({ final: "OK", lines: ["+CSQ: 20,0"] });
    expect(r.urcs).toEqual(["+CFUN: 1", "+CPIN: READY"]);
  });
});

describe("URCs and finals", () => {
  const urcs = [
    "WIFI DISCONNECT", "WIFI CONNECTED", "WIFI GOT IP", "CLOSED", "0,CLOSED", "0,CONNECT", "ready", "busy p...",
    "busy s...", "+PDP: DEACT", "CLOSE OK", "RDY", "Call Ready", "SMS Ready", "NORMAL POWER DOWN",
    "UNDER-VOLTAGE POWER DOWN", "UNDER-VOLTAGE WARNNING", "CONNECT OK", "CONNECT FAIL", "ALREADY CONNECT",
    "+CPIN: READY", "+CREG: 1", "+CGREG: 1", "+CFUN: 1", "+IPD,0,12",
  ];
  it.each(urcs)("%s goes to onUrc while a command is in flight", (u) => {
    const r = new Rig();
    r.send("AT+CIFSR");
    r.feed(`+CIFSR:STAIP,"1.2.3.4"\r\n${u}\r\nOK\r\n`);
    expect(r.urcs).toEqual([u]);
    expect(r.reply()).toEqual({ final: "OK", lines: ['+CIFSR:STAIP,"1.2.3.4"'] });
  });

  it.each([
    ["ERROR"], ["+CME ERROR: 10"], ["+CMS ERROR: 500"], ["SEND OK"], ["SEND FAIL"], ["FAIL"],
  ])("%s is final", (f) => {
    const r = new Rig();
    r.send("AT+X");
    r.feed(`line\r\n${f}\r\nafter\r\n`);
    expect(r.reply()).toEqual({ final: f, lines: ["line"] });
    expect(r.urcs).toEqual(["after"]);
  });

  it("own finals match as prefixes and win over URCs; CONNECT OK is a URC when unclaimed", () => {
    const r = new Rig();
    r.send("AT+CWJAP", { finals: ["WIFI GOT"] });
    r.feed("WIFI CONNECTED\r\nWIFI GOT IP\r\n");
    expect(r.reply().final).toBe("WIFI GOT IP");
    expect(r.urcs).toEqual(["WIFI CONNECTED"]);
    r.feed("CONNECT OK\r\nDNS Fail\r\n");
    expect(r.urcs).toEqual(["WIFI CONNECTED", "CONNECT OK", "DNS Fail"]);
  });

  it("a line that is not final and not a URC goes to onUrc when idle", () => {
    const r = new Rig();
    r.feed("STATE: IP INITIAL\r\n");
    expect(r.urcs).toEqual(["STATE: IP INITIAL"]);
  });
});

describe.each([["Node", false], ["Espruino", true]] as const)("commands, queue, timeouts, %s timer handles", (_name, esp) => {
  it("runs one command at a time, in order", () => {
    const r = new Rig("whole", esp);
    r.send("AT");
    r.send("ATE0");
    expect(r.written).toBe("AT\r\n");
    r.feed("OK\r\n");
    expect(r.written).toBe("AT\r\nATE0\r\n");
    r.feed("ATE0\r\nOK\r\n");
    expect(r.replies.map((x) => [x.cmd, x.reply.final])).toEqual([["AT", "OK"], ["ATE0", "OK"]]);
  });

  it("ends a silent command with TIMEOUT at its timeout", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSTART", { timeout: 3000 });
    r.feed("some line\r\n");
    r.clock.advance(2999);
    expect(r.replies).toHaveLength(0);
    r.clock.advance(1);
    expect(r.reply()).toEqual({ final: "TIMEOUT", lines: ["some line"] });
  });

  it("a data command whose '> ' does not come within 3 s ends with TIMEOUT, whatever its own timeout; the next command waits up to 3 s more for a late prompt", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=2", { data: "\xc0\x00", timeout: 85_000 });
    r.send("AT+CIPCLOSE", { timeout: 5000, finals: ["CLOSE"] });
    r.clock.advance(2999);
    expect(r.replies).toHaveLength(0);
    r.clock.advance(1);
    expect(r.reply(0)).toEqual({ final: "TIMEOUT", lines: [] });
    // no prompt: the next command 3 s later (not 85 s behind the stuck one)
    r.clock.advance(2999);
    expect(r.written).toBe("AT+CIPSEND=2\r\n");
    r.clock.advance(1);
    expect(r.written).toBe("AT+CIPSEND=2\r\nAT+CIPCLOSE\r\n");
    // a prompt now is nobody's: it writes nothing
    r.feed("> ");
    expect(r.written).toBe("AT+CIPSEND=2\r\nAT+CIPCLOSE\r\n");
    r.feed("CLOSE OK\r\n");
    expect(r.reply(1).final).toBe("CLOSE OK");
    expect(r.clock.pending).toBe(0);
  });

  it("a late '> ' after a prompt TIMEOUT still gets the command's bytes, so the modem never takes the next command for its data", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=2", { data: "\xc0\x00", timeout: 85_000 });
    r.send("AT+RST", { timeout: 5000 });
    r.clock.advance(3000);
    expect(r.reply(0).final).toBe("TIMEOUT");
    r.clock.advance(1000);
    r.feed("\r\n> ");
    expect(r.written).toBe("AT+CIPSEND=2\r\n\xc0\x00");
    r.feed("\r\nSEND OK\r\n"); // the late answer: dropped, then the quiet gap
    r.clock.advance(500);
    expect(r.written).toBe("AT+CIPSEND=2\r\n\xc0\x00AT+RST\r\n");
  });

  it("the wait for '> ' starts again while +IPD data is still arriving (a modem delivering a large message prompts after it)", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=2", { data: "\xc0\x00", timeout: 85_000 });
    r.feed("+IPD,9000:");
    for (let i = 0; i < 9; i++) {
      r.clock.advance(2000); // 9 s of data in all, 1,000 bytes every 2 s: over the 3 s bound in all, never between two pieces
      r.feed("x".repeat(1000));
    }
    expect(r.replies).toHaveLength(0);
    expect(r.data.length).toBe(9000);
    r.feed("\r\n> ");
    expect(r.written).toBe("AT+CIPSEND=2\r\n\xc0\x00");
    r.feed("\r\nSEND OK\r\n");
    expect(r.reply(0).final).toBe("SEND OK");
  });

  it("once the data is written, a data command waits its whole timeout (from the prompt) for SEND OK", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=3", { data: "abc", timeout: 85_000 });
    r.clock.advance(2900);
    r.feed("\r\n> ");
    expect(r.written).toBe("AT+CIPSEND=3\r\nabc");
    r.clock.advance(84_999);
    expect(r.replies).toHaveLength(0);
    r.clock.advance(1);
    expect(r.reply()).toEqual({ final: "TIMEOUT", lines: [] });
  });

  it("the prompt bound is 3 s whatever the command's timeout; a command with data \"\" (a wait) has its own timeout", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=1", { data: "x", timeout: 1000 });
    r.send("", { data: "", timeout: 10_000, finals: ["ready"] });
    r.clock.advance(2999);
    expect(r.replies).toHaveLength(0);
    r.clock.advance(1);
    expect(r.reply().final).toBe("TIMEOUT");
    expect(r.written).toBe("AT+CIPSEND=1\r\n");
    // (3 s for a late prompt, which would still get the "x", then the wait's own 10 s)
    r.clock.advance(3000 + 9999);
    expect(r.replies).toHaveLength(1);
    r.clock.advance(1);
    expect(r.reply(1).final).toBe("TIMEOUT");
  });

  it("after a TIMEOUT, the late reply is swallowed and the next command waits for a quiet gap", () => {
    const r = new Rig("whole", esp);
    r.send("AT+SLOW", { timeout: 1000 });
    r.send("AT+NEXT");
    r.clock.advance(1000); // t0+1000: TIMEOUT
    expect(r.reply(0).final).toBe("TIMEOUT");
    expect(r.written).toBe("AT+SLOW\r\n"); // not yet
    r.clock.advance(300);
    r.feed("+SLOW: late\r\nWIFI DISCONNECT\r\nOK\r\n"); // the late reply
    r.clock.advance(499);
    expect(r.written).toBe("AT+SLOW\r\n"); // the gap restarts with every stale line
    r.clock.advance(1);
    expect(r.written).toBe("AT+SLOW\r\nAT+NEXT\r\n");
    expect(r.replies).toHaveLength(1); // the late OK did not end AT+NEXT
    expect(r.urcs).toEqual(["WIFI DISCONNECT"]); // URCs still flow; late lines do not
    r.feed("ERROR\r\n");
    expect(r.reply(1)).toEqual({ final: "ERROR", lines: [] });
  });

  it("after a TIMEOUT with no late reply, the next command goes out after 500 ms", () => {
    const r = new Rig("whole", esp);
    r.send("AT+SLOW", { timeout: 1000 });
    r.clock.advance(1000);
    r.clock.advance(200);
    r.send("AT");
    r.clock.advance(299);
    expect(r.written).toBe("AT+SLOW\r\n");
    r.clock.advance(1);
    expect(r.written).toBe("AT+SLOW\r\nAT\r\n");
    r.feed("OK\r\n");
    expect(r.reply(1).final).toBe("OK");
    expect(r.clock.pending).toBe(0);
  });

  it("bounds the queue at 8: the overflowing command ends with BUSY, asynchronously", () => {
    const r = new Rig("whole", esp);
    for (let i = 0; i < 10; i++) r.send("AT+Q" + i);
    expect(r.replies).toHaveLength(0);
    r.clock.advance(0);
    expect(r.replies.map((x) => [x.cmd, x.reply.final])).toEqual([["AT+Q9", "BUSY"]]);
    for (let i = 0; i < 9; i++) r.feed("OK\r\n");
    expect(r.replies.map((x) => x.reply.final)).toEqual(["BUSY", ...Array(9).fill("OK")]);
  });

  it("lets done() send the next command and survives a done() that throws", () => {
    const r = new Rig("whole", esp);
    r.e.send({
      cmd: "AT",
      timeout: 100,
      done: () => {
        r.send("AT+SECOND");
        throw new Error("boom");
      },
    });
    expect(() => r.feed("OK\r\n")).not.toThrow();
    expect(r.written).toBe("AT\r\nAT+SECOND\r\n");
    r.feed("OK\r\n");
    expect(r.reply().final).toBe("OK");
    expect(r.logs.some((l) => l.includes("boom"))).toBe(true);
  });

  it("a cmd of \"\" writes nothing and waits for its final", () => {
    const r = new Rig("whole", esp);
    r.send("", { finals: ["ready"], timeout: 2000 });
    r.feed("\x00\xfe garbage\r\nready\r\n");
    expect(r.written).toBe("");
    expect(r.reply()).toEqual({ final: "ready", lines: ["\x00\xfe garbage"] });
  });

  it("abort() ends the in-flight and queued commands, clears buffers and timers", () => {
    const r = new Rig("whole", esp);
    r.send("AT+A");
    r.send("AT+B");
    r.feed("partial line\r\nhalf");
    r.feed("+IPD,10:abc"); // a frame cut short (the "half" line absorbs the header: not at a line start)
    r.e.abort();
    expect(r.replies.map((x) => [x.cmd, x.reply.final])).toEqual([["AT+A", "ABORTED"], ["AT+B", "ABORTED"]]);
    expect(r.reply(0).lines).toEqual(["partial line"]);
    expect(r.clock.pending).toBe(0);
    r.send("AT");
    r.feed("OK\r\n");
    expect(r.reply(2)).toEqual({ final: "OK", lines: [] });
  });

  it("abort(live) of a data command still waiting for its '> ': the next command waits for that prompt (≤ 3 s), the data goes to it, the answer passes in a quiet gap", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=2", { data: "\xc0\x00", timeout: 85_000 });
    r.clock.advance(100);
    r.e.abort(true);
    expect(r.reply(0).final).toBe("ABORTED");
    r.send("AT+CIPCLOSE", { timeout: 5000, finals: ["CLOSE"] });
    r.clock.advance(1000);
    expect(r.written).toBe("AT+CIPSEND=2\r\n"); // not yet: the modem may still prompt
    r.feed("\r\n> ");
    expect(r.written).toBe("AT+CIPSEND=2\r\n\xc0\x00"); // what the modem now takes as its data
    r.feed("\r\nSEND OK\r\n"); // its answer: dropped, and the quiet gap starts again
    r.clock.advance(499);
    expect(r.written).toBe("AT+CIPSEND=2\r\n\xc0\x00");
    r.clock.advance(1);
    expect(r.written).toBe("AT+CIPSEND=2\r\n\xc0\x00AT+CIPCLOSE\r\n");
    r.feed("CLOSE OK\r\n");
    expect(r.replies.map((x) => x.reply.final)).toEqual(["ABORTED", "CLOSE OK"]);
    expect(r.clock.pending).toBe(0);
  });

  it("abort(live) of a data command whose prompt never comes: the next command goes out 3 s later; after the prompt, abort(live) waits for nothing", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=1", { data: "x", timeout: 85_000 });
    r.e.abort(true);
    r.send("AT");
    r.clock.advance(2999);
    expect(r.written).toBe("AT+CIPSEND=1\r\n");
    r.clock.advance(1);
    expect(r.written).toBe("AT+CIPSEND=1\r\nAT\r\n");
    r.feed("> "); // too late: nothing is written any more
    r.feed("OK\r\n");
    expect(r.written).toBe("AT+CIPSEND=1\r\nAT\r\n");
    expect(r.reply(1).final).toBe("OK");
    r.send("AT+CIPSEND=1", { data: "y", timeout: 85_000 });
    r.feed("> ");
    r.e.abort(true);
    r.send("AT");
    expect(r.written).toBe("AT+CIPSEND=1\r\nAT\r\nAT+CIPSEND=1\r\nyAT\r\n");
  });

  it("abort(live) from onData in the middle of a +IPD frame: the rest of the frame still goes to onData, and the prompt after it gets the owed bytes", () => {
    for (const mode of MODES) {
      const r = new Rig(mode, esp);
      let aborted = false;
      r.e.onData = (b) => {
        r.ev.push(["data", -1, b]);
        // the session sees a fatal byte (QoS 3) at the start of a packet and gives the link up
        if (!aborted && b.includes("6")) {
          aborted = true;
          r.e.abort(true);
          r.send("AT+CIPCLOSE", { timeout: 5000, finals: ["CLOSE"] });
        }
      };
      r.send("AT+CIPSEND=3", { data: "abc", timeout: 85_000 });
      r.feed("\r\n+IPD,14:\x90\x03\x00\x18\x016\x07\x00\x03ledon> ");
      expect(r.data, label(mode)).toBe("\x90\x03\x00\x18\x016\x07\x00\x03ledon");
      expect(r.written, label(mode)).toBe("AT+CIPSEND=3\r\nabc");
      r.feed("\r\nSEND OK\r\n");
      r.clock.advance(500);
      expect(r.written, label(mode)).toBe("AT+CIPSEND=3\r\nabcAT+CIPCLOSE\r\n");
    }
  });

  it("abort(live) then a line other than the prompt (ERROR: no prompt is coming): the next command after the quiet gap; a plain abort() waits for no prompt", () => {
    const r = new Rig("whole", esp);
    r.send("AT+CIPSEND=1", { data: "x", timeout: 85_000 });
    r.e.abort(true);
    r.send("AT");
    r.clock.advance(1000);
    expect(r.written).toBe("AT+CIPSEND=1\r\n");
    r.feed("ERROR\r\n");
    r.clock.advance(499);
    expect(r.written).toBe("AT+CIPSEND=1\r\n");
    r.clock.advance(1);
    expect(r.written).toBe("AT+CIPSEND=1\r\nAT\r\n");
    r.feed("OK\r\n");
    // the module restarted or is stuck: nothing is owed
    r.send("AT+CIPSEND=1", { data: "y", timeout: 85_000 });
    r.e.abort(true);
    r.e.abort();
    r.send("AT");
    expect(r.written).toBe("AT+CIPSEND=1\r\nAT\r\nAT+CIPSEND=1\r\nAT\r\n");
    r.feed("> ");
    expect(r.written).toBe("AT+CIPSEND=1\r\nAT\r\nAT+CIPSEND=1\r\nAT\r\n");
    expect(r.clock.pending).toBe(1); // AT's timeout only
  });

  it("abort() drops a half-read +IPD frame and a stale guard", () => {
    const r = new Rig("whole", esp);
    r.feed("+IPD,10:abc");
    r.send("AT+SLOW", { timeout: 10 });
    r.clock.advance(10);
    r.e.abort();
    expect(r.clock.pending).toBe(0);
    r.send("AT");
    expect(r.written).toBe("AT+SLOW\r\nAT\r\n"); // no quiet gap left to wait for
    r.feed("OK\r\n");
    expect(r.data).toBe("abc");
    expect(r.reply(1).final).toBe("OK");
  });
});

describe("Espruino timer handles: only pending timers are ever cleared", () => {
  // On the board a timer id is reused once free and clearTimeout of a fired id
  // throws (or, reused, would clear someone else's timer).
  const noErrors = (r: Rig) => expect(r.logs.filter((l) => !l.startsWith("AT"))).toEqual([]);

  it("reply, TIMEOUT, the restarted quiet gap, and abort() idle, stale and in flight", () => {
    const r = new Rig("bytes", true);
    r.send("AT");
    r.feed("OK\r\n"); // clears the pending timeout
    r.send("AT+SLOW", { timeout: 100 });
    r.send("AT+NEXT");
    r.clock.advance(100); // TIMEOUT fired: the quiet gap starts
    r.clock.advance(200);
    r.feed("late\r\n"); // restarts the pending gap
    r.clock.advance(499);
    expect(r.written).toBe("AT\r\nAT+SLOW\r\n");
    r.clock.advance(1); // the gap fired: AT+NEXT goes out
    expect(r.written).toBe("AT\r\nAT+SLOW\r\nAT+NEXT\r\n");
    r.feed("OK\r\n");
    expect(r.clock.pending).toBe(0);
    r.e.abort(); // idle: nothing to clear
    r.send("AT+X", { timeout: 50 });
    r.clock.advance(50);
    r.e.abort(); // stale: the pending gap is cleared
    expect(r.clock.pending).toBe(0);
    r.send("AT+Y");
    r.e.abort(); // in flight
    expect(r.replies.map((x) => [x.cmd, x.reply.final])).toEqual([
      ["AT", "OK"], ["AT+SLOW", "TIMEOUT"], ["AT+NEXT", "OK"], ["AT+X", "TIMEOUT"], ["AT+Y", "ABORTED"],
    ]);
    expect(r.clock.pending).toBe(0);
    noErrors(r);
  });

  it("a done() that aborts or sends from inside the TIMEOUT, and BUSY's zero-delay timer", () => {
    const r = new Rig("whole", true);
    r.e.send({ cmd: "AT+A", timeout: 10, done: () => r.e.abort() }); // clears the gap just armed
    r.clock.advance(10);
    expect(r.clock.pending).toBe(0);
    r.e.send({ cmd: "AT+B", timeout: 10, done: () => void r.send("AT+C") }); // waits for the gap
    r.clock.advance(10);
    expect(r.written).toBe("AT+A\r\nAT+B\r\n");
    r.clock.advance(500);
    expect(r.written).toBe("AT+A\r\nAT+B\r\nAT+C\r\n");
    for (let i = 0; i < 8; i++) r.send("AT+Q" + i);
    r.send("AT+FULL");
    r.clock.advance(0);
    expect(r.replies.map((x) => [x.cmd, x.reply.final])).toEqual([["AT+FULL", "BUSY"]]);
    r.feed("OK\r\n");
    r.e.abort();
    expect(r.replies.map((x) => x.reply.final)).toEqual(["BUSY", "OK", ...Array(8).fill("ABORTED")]);
    expect(r.clock.pending).toBe(0);
    noErrors(r);
  });

  it("never clears another timer that reuses the id of one of its fired timers", () => {
    const r = new Rig("whole", true);
    let app = 0;
    r.send("AT+SLOW", { timeout: 100 });
    r.clock.advance(100); // timeout fired, then the gap (same id again)
    r.clock.advance(500); // the gap fired: no timer left
    r.clock.setTimeout(() => app++, 1000); // the app's timer takes the engine's old id
    r.send("AT");
    r.feed("OK\r\n");
    r.send("AT+Z", { timeout: 10 });
    r.clock.advance(10);
    r.e.abort();
    r.send("AT+W");
    r.e.abort();
    r.clock.advance(1000);
    expect(app).toBe(1);
    expect(r.replies.map((x) => x.reply.final)).toEqual(["TIMEOUT", "OK", "TIMEOUT", "ABORTED"]);
    noErrors(r);
  });

  it("random noise with timeouts, prompts and aborts never throws", () => {
    for (let seed = 1; seed <= 10; seed++) {
      const r = new Rig(seed, true);
      const rand = mulberry32(seed * 13);
      for (let k = 0; k < 40; k++) {
        const pick = rand();
        if (pick < 0.3) r.send("AT+N" + k, { data: "d", timeout: 1 + Math.floor(rand() * 300) });
        else if (pick < 0.4) r.e.abort();
        else if (pick < 0.7) r.feed(["OK\r\n", "> ", "ERROR\r\n", "late\r\n", "+IPD,2:xy", "WIFI GOT IP\r\n"][Math.floor(rand() * 6)]);
        else r.clock.advance(Math.floor(rand() * 600));
      }
      r.e.abort();
      r.clock.advance(10_000);
      expect(r.clock.pending).toBe(0);
      noErrors(r);
    }
  });
});

describe("bounds and robustness", () => {
  it("drops a line longer than 256 bytes and resynchronises at the next line end", () => {
    for (const mode of ["whole", "bytes", 3] as Mode[]) {
      const r = new Rig(mode);
      r.send("AT");
      r.feed("x".repeat(300) + "OK\r\nline:ok\r\n" + "y".repeat(257) + "\r\nOK\r\n");
      expect(r.reply()).toEqual({ final: "OK", lines: ["line:ok"] });
      expect(r.logs.filter((l) => l === "long").length).toBeGreaterThanOrEqual(2);
    }
  });

  it("keeps a 256-byte line, drops a 257-byte one", () => {
    const r = new Rig(5);
    const l = "z".repeat(256);
    r.feed(l + "\r\n" + l + "zz\r\n" + "y".repeat(255) + "\n");
    expect(r.urcs).toEqual([l, "y".repeat(255)]);
  });

  it("drops a 1 MB line without an end as one long line, and frames again after its end", () => {
    // 1 MB of noise with no "\n": one endless line, fed 1 KB at a time
    const r = new Rig();
    const rand = mulberry32(99);
    for (let k = 0; k < 1024; k++) {
      let c = "";
      for (let j = 0; j < 1024; j++) {
        const x = Math.floor(rand() * 256);
        c += String.fromCharCode(x === 10 ? 13 : x);
      }
      r.e.feed(c);
    }
    // reported once, delivered nowhere (nothing of it reached onUrc or onData)
    expect(r.logs.filter((l) => l === "long")).toEqual(["long"]);
    expect(r.ev).toEqual([]);
    r.send("AT");
    r.feed("\r\nOK\r\n"); // the flood's line end, then a real reply
    expect(r.reply().final).toBe("OK");
  });

  it("caps a command's lines at 32", () => {
    const r = new Rig();
    r.send("AT+CWLAP");
    let s = "";
    for (let i = 0; i < 50; i++) s += `+CWLAP:${i}\r\n`;
    r.feed(s + "OK\r\n");
    expect(r.reply().lines).toHaveLength(32);
    expect(r.reply().lines[31]).toBe("+CWLAP:31");
  });

  it("never throws out of feed(), even when a handler throws", () => {
    const r = new Rig();
    r.e.onUrc = () => {
      throw new Error("handler");
    };
    expect(() => r.e.feed("WIFI CONNECTED\r\n")).not.toThrow();
    r.e.onUrc = (l) => r.ev.push(["urc", l]);
    r.feed("\r\nWIFI GOT IP\r\n");
    expect(r.urcs).toEqual(["WIFI GOT IP"]);
  });

  it("random binary noise in random chunks never throws and the engine recovers", () => {
    for (let seed = 1; seed <= 20; seed++) {
      const r = new Rig(seed);
      const rand = mulberry32(seed * 7);
      let noise = "";
      for (let i = 0; i < 3000; i++) {
        const pick = rand();
        noise +=
          pick < 0.05 ? "\r\n" : pick < 0.08 ? ">" : pick < 0.1 ? "+IPD," : pick < 0.12 ? ":" : String.fromCharCode(Math.floor(rand() * 256));
      }
      r.send("AT+N", { data: "d", timeout: 50 });
      r.feed(noise);
      r.clock.advance(10_000);
      r.e.abort(); // a driver resets after garbage like this
      r.send("AT");
      r.feed("\r\nOK\r\n");
      expect(r.replies[r.replies.length - 1].reply.final).toBe("OK");
    }
  });

  it("never logs a secret command, even when it is echoed back", () => {
    const r = new Rig("bytes");
    r.send('AT+CWJAP="lab","hunter2"', { secret: true, finals: ["FAIL"] });
    r.feed('AT+CWJAP="lab","hunter2"\r\r\nWIFI CONNECTED\r\n+CWJAP:1\r\nFAIL\r\n');
    r.send('AT+CSTT="apn","user","hunter2"', { secret: true, timeout: 10 });
    r.clock.advance(10);
    r.feed('AT+CSTT="apn","user","hunter2"\r\n' + "x".repeat(300) + "hunter2\r\n");
    expect(r.reply(0)).toEqual({ final: "FAIL", lines: ["+CWJAP:1"] });
    expect(r.logs).toContain("AT+CWJAP=<hidden>");
    expect(r.logs).toContain("AT+CSTT=<hidden>");
    expect(r.logs.join("\n")).not.toContain("hunter2");
    expect(r.urcs.join("\n")).not.toContain("hunter2");
  });
});
