/**
 * The modem simulator core (scripts/simulators/modem-sim/core.ts), driven through a tiny
 * throwaway dialect: chunking, pacing, framing, echo, raw capture, the TCP
 * bridge to a real loopback server, fault knobs, transcript.
 */
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { ModemSimCore, chunkSizes, prng, uartMs, type SimOptions, type TcpLink, type Timers } from "../../scripts/simulators/modem-sim/core";
import { AtEngine, type AtReply } from "../../src/at/engine";

/** The throwaway dialect. */
class TinySim extends ModemSimCore {
  commands: string[] = [];
  raws: string[] = [];
  link: TcpLink | null = null;
  constructor(opts: SimOptions = {}) {
    super(opts);
  }
  protected onCommand(cmd: string): void {
    this.commands.push(cmd);
    let m: RegExpExecArray | null;
    if (cmd === "AT") this.sendLine("OK");
    else if (cmd === "ATE0") {
      this.echo = false;
      this.sendLine("OK");
    } else if ((m = /^AT\+SEND=(\d+)$/.exec(cmd))) {
      this.send("> ");
      this.expectRaw(Number(m[1]), (b) => {
        this.raws.push(b);
        this.link?.write(b);
        this.sendLine("SEND OK");
      });
    } else if ((m = /^AT\+OPEN=(.+),(\d+)$/.exec(cmd))) {
      this.link = this.openTcp(m[1], Number(m[2]), {
        onConnect: () => this.sendLine("CONNECT"),
        onData: (b) => this.sendIpd(`+IPD,${b.length}:`, b),
        onClose: (why) => this.sendLine("CLOSED " + why),
      }, 0);
      this.sendLine("OK");
    } else if ((m = /^AT\+TX=(.*)$/.exec(cmd))) {
      this.link?.write(m[1]);
      this.sendLine("OK");
    } else if (cmd === "AT+CLOSE") {
      this.link?.close();
      this.sendLine("OK");
    } else if (cmd === "AT+THROW") throw new Error("dialect bug");
    else this.sendLine("ERROR");
  }
  protected onReboot(): void {
    this.commands = [];
    this.sendLine("ready");
  }
  protected onNetDown(): void {
    this.sendLine("NET DOWN");
    this.dropLink();
  }
  // test access
  out(s: string): void {
    this.send(s);
  }
}

/** Timers that record every delay and run only when flushed. */
class StepTimers implements Timers {
  delays: number[] = [];
  private q: { fn: () => void; ms: number; id: number }[] = [];
  private n = 0;
  setTimeout(fn: () => void, ms: number): unknown {
    const t = { fn, ms, id: ++this.n };
    this.delays.push(ms);
    this.q.push(t);
    return t;
  }
  clearTimeout(h: unknown): void {
    this.q = this.q.filter((t) => t !== h);
  }
  /** Runs timers (and those they schedule) in due order. */
  flush(limit = 100000): void {
    while (this.q.length && limit-- > 0) {
      this.q.sort((a, b) => a.ms - b.ms || a.id - b.id);
      const t = this.q.shift()!;
      // relative delays: later timers move forward by the elapsed time
      for (const o of this.q) o.ms = Math.max(0, o.ms - t.ms);
      t.fn();
    }
  }
}

function rig(opts: SimOptions = {}) {
  const timers = new StepTimers();
  const sim = new TinySim({ timers, ...opts });
  const chunks: string[] = [];
  sim.on("tx", (c: string) => chunks.push(c));
  return { sim, timers, chunks, text: () => chunks.join("") };
}

const sims: ModemSimCore[] = [];
afterEach(() => {
  for (const s of sims.splice(0)) s.close();
});

describe("output chunking and pacing", () => {
  const payload = Array.from({ length: 3000 }, (_, i) => String.fromCharCode((i * 37) % 256)).join("");

  it("is deterministic per seed, within 1..maxChunk, and preserves every byte in order", () => {
    const run = (seed: number) => {
      const r = rig({ seed, maxChunk: 20 });
      r.sim.out(payload.slice(0, 1000));
      r.sim.out(payload.slice(1000));
      r.timers.flush();
      return r.chunks;
    };
    const a = run(7),
      b = run(7),
      c = run(8);
    expect(a).toEqual(b);
    expect(c).not.toEqual(a);
    for (const x of [a, c]) {
      expect(x.join("")).toBe(payload);
      expect(Math.max(...x.map((s) => s.length))).toBeLessThanOrEqual(20);
      expect(Math.min(...x.map((s) => s.length))).toBeGreaterThanOrEqual(1);
      expect(new Set(x.map((s) => s.length)).size).toBeGreaterThan(5); // really random sizes
    }
    // the sizes are the documented chunkSizes() of the same seed's stream
    expect(a.map((s) => s.length)).toEqual(chunkSizes(payload.length, 20, prng(7)));
  });

  it("emits nothing synchronously (the board never re-enters itself)", () => {
    const r = rig();
    r.sim.out("hello");
    expect(r.chunks).toEqual([]);
    r.timers.flush();
    expect(r.text()).toBe("hello");
  });

  it("paces at the baud rate: each chunk waits its 10 bits per byte on the wire", () => {
    expect(uartMs(960, 9600)).toBe(1000);
    expect(uartMs(11520, 115200)).toBe(1000);
    const r = rig({ baud: 9600, maxChunk: 32, seed: 3 });
    r.sim.out(payload.slice(0, 960));
    r.timers.flush();
    expect(r.text()).toBe(payload.slice(0, 960));
    const lens = r.chunks.map((s) => s.length);
    expect(r.timers.delays).toEqual(lens.map((n) => (n * 10 * 1000) / 9600));
    expect(r.timers.delays.reduce((x, y) => x + y, 0)).toBeCloseTo(1000, 6);
  });

  it("does not pace without a baud rate", () => {
    const r = rig({ maxChunk: 8 });
    r.sim.out(payload.slice(0, 100));
    r.timers.flush();
    expect(new Set(r.timers.delays)).toEqual(new Set([0]));
  });
});

describe("board input: framing, echo, raw capture", () => {
  it("frames commands on \\r\\n, \\r and \\n, split anywhere, and echoes until ATE0", () => {
    const r = rig();
    for (const ch of "AT\r\nAT+X\rAT\n\r\n\rATE0\r\nAT\r\n") r.sim.receive(ch);
    r.timers.flush();
    expect(r.sim.commands).toEqual(["AT", "AT+X", "AT", "ATE0", "AT"]);
    expect(r.text()).toBe("AT\r\nOK\r\nAT+X\r\nERROR\r\nAT\r\nOK\r\nATE0\r\nOK\r\nOK\r\n");
  });

  it("captures exactly n raw bytes after the prompt, then frames lines again", () => {
    const r = rig();
    r.sim.receive("ATE0\r\nAT+SEND=7\r\n");
    r.timers.flush(); // the prompt reaches the board
    r.sim.receive("a\r\nOK\r");
    r.sim.receive("\nAT\r\n");
    r.timers.flush();
    expect(r.sim.raws).toEqual(["a\r\nOK\r\n"]);
    expect(r.sim.commands).toEqual(["ATE0", "AT+SEND=7", "AT"]);
    expect(r.text()).toBe("ATE0\r\nOK\r\n> SEND OK\r\nOK\r\n");
    expect(r.sim.violations).toEqual([]);
  });

  it("records a violation when raw data comes before the prompt left the modem", () => {
    const r = rig();
    r.sim.receive("AT+SEND=3\r\nxyz"); // no flush: "> " still queued
    r.timers.flush();
    expect(r.sim.raws).toEqual(["xyz"]);
    expect(r.sim.violations.length).toBe(1);
  });

  it("takes the \\n of a \\r\\n command terminator as no data, even in a later chunk", () => {
    const r = rig();
    r.sim.receive("ATE0\r\n");
    r.timers.flush();
    // "\r" and "\n" in separate chunks, the prompt delivered in between
    r.sim.receive("AT+SEND=3\r");
    r.timers.flush();
    r.sim.receive("\n");
    r.sim.receive("abc");
    // in one chunk with the data
    r.sim.receive("AT+SEND=2\r\nde");
    // a "\n" that follows a bare-"\n" terminator is data
    r.sim.receive("AT+SEND=2\n");
    r.timers.flush();
    r.sim.receive("\nf");
    r.timers.flush();
    expect(r.sim.raws).toEqual(["abc", "de", "\nf"]);
    expect(r.sim.commands).toEqual(["ATE0", "AT+SEND=3", "AT+SEND=2", "AT+SEND=2"]);
  });

  it("counts a \"> \" prompt split across chunks as delivered once its \">\" is out", () => {
    const r = rig({ maxChunk: 1 });
    r.sim.receive("ATE0\r\n");
    r.timers.flush();
    r.chunks.length = 0;
    r.sim.receive("AT+SEND=3\r\n");
    r.timers.flush(1); // only ">" has left; the space is still on its way
    expect(r.text()).toBe(">");
    r.sim.receive("xyz");
    r.timers.flush();
    expect(r.sim.raws).toEqual(["xyz"]);
    expect(r.sim.violations).toEqual([]);
    expect(r.text()).toBe("> SEND OK\r\n");
    // before the ">" it is still a violation
    r.sim.receive("AT+SEND=1\r\nq");
    r.timers.flush();
    expect(r.sim.raws).toEqual(["xyz", "q"]);
    expect(r.sim.violations).toHaveLength(1);
  });

  it("does not count output that mute() or reboot() discarded as owed before a later prompt", () => {
    for (const discard of ["mute", "reboot"] as const) {
      const r = rig({ maxChunk: 1 });
      r.sim.out("x".repeat(50));
      r.timers.flush(1);
      if (discard === "mute") {
        r.sim.mute(true);
        r.sim.mute(false);
      } else r.sim.reboot();
      r.timers.flush();
      r.sim.receive("AT+SEND=2\r\n");
      r.timers.flush(); // the whole prompt is out
      r.sim.receive("ab");
      r.timers.flush();
      expect(r.sim.raws, discard).toEqual(["ab"]);
      expect(r.sim.violations, discard).toEqual([]);
    }
  });

  it("answers ERROR when the dialect throws, and bounds an endless line", () => {
    const r = rig();
    r.sim.receive("ATE0\r\nAT+THROW\r\n");
    r.sim.receive("Z".repeat(100_000));
    r.sim.receive("\r\nAT\r\n");
    r.timers.flush();
    expect(r.text()).toBe("ATE0\r\nOK\r\nERROR\r\nERROR\r\nOK\r\n");
    expect(r.sim.commands[2].length).toBe(2048);
  });
});

describe("fault knobs", () => {
  it("busy, error and sendFail answer for the dialect the given number of times", () => {
    const r = rig();
    r.sim.receive("ATE0\r\n");
    r.sim.fault.busy = 1;
    r.sim.fault.error = 1;
    r.sim.receive("AT\r\nAT\r\nAT\r\n");
    r.timers.flush();
    r.sim.fault.sendFail = 1;
    r.sim.receive("AT+SEND=2\r\n");
    r.timers.flush();
    r.sim.receive("ab");
    r.sim.receive("AT+SEND=1\r\n");
    r.timers.flush();
    r.sim.receive("c");
    r.timers.flush();
    expect(r.text()).toBe("ATE0\r\nOK\r\nbusy p...\r\nERROR\r\nOK\r\n> SEND FAIL\r\n> SEND OK\r\n");
    expect(r.sim.raws).toEqual(["c"]);
  });

  it("stall ignores the board's bytes and holds the output, which goes out in order once it ends; a reboot meanwhile queues its banner behind it", () => {
    const r = rig({ seed: 5, maxChunk: 4 });
    r.sim.receive("ATE0\r\n");
    r.timers.flush();
    r.chunks.length = 0;
    r.sim.out("held-1 ");
    r.sim.stall(true);
    r.sim.receive("AT\r\n");
    r.sim.injectUrc("URC");
    r.timers.flush();
    expect(r.text()).toBe("");
    expect(r.sim.commands).toEqual(["ATE0"]); // not even heard
    expect(r.sim.fault.stalled).toBe(true);
    r.sim.stall(false);
    r.timers.flush();
    expect(r.text()).toBe("held-1 URC\r\n");
    r.sim.receive("AT\r\n");
    r.timers.flush();
    expect(r.text()).toBe("held-1 URC\r\nOK\r\n");
    r.chunks.length = 0;
    r.sim.stall(true);
    r.sim.out("lost");
    r.sim.reboot();
    r.timers.flush();
    expect(r.text()).toBe("");
    r.sim.stall(false);
    r.timers.flush();
    expect(r.text().includes("lost")).toBe(false);
    expect(r.text().endsWith("ready\r\n")).toBe(true);
  });

  it("mute discards output; injectUrc and garbage send lines; reboot sends noise then the banner with echo on", () => {
    const r = rig({ seed: 5 });
    r.sim.receive("ATE0\r\n");
    r.timers.flush();
    r.chunks.length = 0;
    r.sim.mute(true);
    r.sim.receive("AT\r\n");
    r.timers.flush();
    expect(r.text()).toBe("");
    expect(r.sim.commands).toEqual(["ATE0", "AT"]); // still heard, not answered
    r.sim.mute(false);
    r.sim.injectUrc("WIFI DISCONNECT");
    r.timers.flush();
    expect(r.text()).toBe("WIFI DISCONNECT\r\n");
    r.chunks.length = 0;
    r.sim.garbage(4);
    r.timers.flush();
    expect(r.text().split("\r\n")).toHaveLength(5);
    r.chunks.length = 0;
    r.sim.reboot();
    r.timers.flush();
    expect(r.text().endsWith("ready\r\n")).toBe(true);
    expect(r.text().length).toBeGreaterThan(16 + 7);
    expect(r.sim.echo).toBe(true);
    r.chunks.length = 0;
    r.sim.receive("AT\r\n");
    r.timers.flush();
    expect(r.text()).toBe("AT\r\nOK\r\n");
  });
});

// ---------------------------------------------------------------- real TCP
function echoServer(): Promise<{ port: number; server: net.Server; sockets: net.Socket[] }> {
  return new Promise((resolve) => {
    const sockets: net.Socket[] = [];
    const server = net.createServer((s) => {
      sockets.push(s);
      s.on("data", (d) => s.write(d));
      s.on("error", () => {});
    });
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as net.AddressInfo).port, server, sockets }));
  });
}

function liveSim(port: number, extra: SimOptions = {}) {
  const sim = new TinySim({
    transcript: true,
    hostMap: (h, p) => (h === "echo.local" ? { host: "127.0.0.1", port } : { host: h, port: p }),
    ...extra,
  });
  sims.push(sim);
  let text = "";
  const waiters: { re: RegExp; res: () => void }[] = [];
  sim.on("tx", (c: string) => {
    text += c;
    for (const w of waiters.slice()) if (w.re.test(text)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.res();
    }
  });
  const until = (re: RegExp) =>
    new Promise<void>((res, rej) => {
      if (re.test(text)) return res();
      waiters.push({ re, res });
      setTimeout(() => rej(new Error(`timeout waiting for ${re} in ${JSON.stringify(text)}`)), 5000);
    });
  return { sim, until, text: () => text };
}

describe("TCP bridge (real loopback sockets)", () => {
  it("connects through hostMap, carries bytes both ways as byte strings, and sees a remote close", async () => {
    const echo = await echoServer();
    try {
      const { sim, until } = liveSim(echo.port);
      sim.receive("ATE0\r\nAT+OPEN=echo.local,1\r\n");
      await until(/CONNECT\r\n/);
      sim.receive("AT+TX=\x00\xff\x80é\r\n");
      await until(/\+IPD,4:\x00\xff\x80é/);
      expect(sim.links()).toHaveLength(1);
      expect(sim.links()[0].connected).toBe(true);
      for (const s of echo.sockets) s.end();
      await until(/CLOSED remote\r\n/);
      expect(sim.links()).toHaveLength(0);
      // transcript: both directions, in order, with times
      const dirs = new Set(sim.transcript.map((e) => e.dir));
      expect(dirs).toEqual(new Set(["board>", "modem>"]));
      expect(sim.transcript[0]).toMatchObject({ dir: "board>", bytes: "ATE0\r\nAT+OPEN=echo.local,1\r\n" });
      expect(sim.transcript.filter((e) => e.dir === "modem>").map((e) => e.bytes).join("")).toContain("CLOSED remote");
      expect(sim.transcriptText()).toContain("board>");
    } finally {
      echo.server.close();
    }
  });

  it("dropLink closes the real socket and reports 'dropped'; the dialect's own close reports nothing", async () => {
    const echo = await echoServer();
    try {
      const { sim, until, text } = liveSim(echo.port);
      sim.receive("ATE0\r\nAT+OPEN=echo.local,1\r\n");
      await until(/CONNECT\r\n/);
      const serverSaw = new Promise<void>((res) => echo.sockets[0].on("close", () => res()));
      sim.dropLink(0);
      await until(/CLOSED dropped\r\n/);
      await serverSaw;
      sim.receive("AT+OPEN=echo.local,1\r\n");
      await until(/CONNECT\r\n[\s\S]*CONNECT\r\n/);
      sim.receive("AT+CLOSE\r\n");
      await until(/OK\r\n$/);
      await new Promise((r) => setTimeout(r, 50));
      expect(text().match(/CLOSED/g)).toHaveLength(1);
    } finally {
      echo.server.close();
    }
  });

  it("refuseLink and a closed port both end with 'refused'; netDown reaches the dialect", async () => {
    const echo = await echoServer();
    const deadPort = echo.port;
    echo.server.close();
    for (const s of echo.sockets) s.destroy();
    await new Promise((r) => setTimeout(r, 20));
    const { sim, until } = liveSim(deadPort);
    sim.receive("ATE0\r\nAT+OPEN=echo.local,1\r\n");
    await until(/CLOSED refused\r\n/);
    const echo2 = await echoServer();
    try {
      const b = liveSim(echo2.port);
      b.sim.fault.refuseLink = true;
      b.sim.receive("ATE0\r\nAT+OPEN=echo.local,1\r\n");
      await b.until(/CLOSED refused\r\n/);
      expect(echo2.sockets).toHaveLength(0);
      b.sim.fault.refuseLink = false;
      b.sim.receive("AT+OPEN=echo.local,1\r\n");
      await b.until(/CONNECT\r\n/);
      b.sim.netDown();
      await b.until(/NET DOWN\r\nCLOSED dropped\r\n/);
    } finally {
      echo2.server.close();
    }
  });

  it("loseIpdBytes drops payload bytes but keeps the header's length", async () => {
    const echo = await echoServer();
    try {
      const { sim, until } = liveSim(echo.port, { seed: 4 });
      sim.receive("ATE0\r\nAT+OPEN=echo.local,1\r\n");
      await until(/CONNECT\r\n/);
      sim.loseIpdBytes(3);
      sim.receive("AT+TX=0123456789\r\n");
      await until(/\+IPD,10:/);
      await new Promise((r) => setTimeout(r, 50));
      const tail = sim.transcript.filter((e) => e.dir === "modem>").map((e) => e.bytes).join("").split("+IPD,10:")[1];
      expect(tail.length).toBe(7);
      expect(sim.fault.loseIpd).toBe(0);
    } finally {
      echo.server.close();
    }
  });

  it("close() tears down sockets and stops all output", async () => {
    const echo = await echoServer();
    try {
      const { sim, until, text } = liveSim(echo.port);
      sim.receive("ATE0\r\nAT+OPEN=echo.local,1\r\n");
      await until(/CONNECT\r\n/);
      const serverSaw = new Promise<void>((res) => echo.sockets[0].on("close", () => res()));
      const before = text();
      sim.close();
      sim.receive("AT\r\n");
      await serverSaw;
      await new Promise((r) => setTimeout(r, 30));
      expect(text()).toBe(before);
      expect(sim.links()).toHaveLength(0);
    } finally {
      echo.server.close();
    }
  });
});

describe("the AT engine against the core over chunked, paced bytes", () => {
  it.each([1, 2, 3, 4, 5])("seed %i: SEND data only after the prompt, +IPD echoed back intact", async (seed) => {
    const echo = await echoServer();
    try {
      const sim = new TinySim({ seed, maxChunk: 5, baud: 115200, transcript: true, hostMap: () => ({ host: "127.0.0.1", port: echo.port }) });
      sims.push(sim);
      const clock = { now: () => Date.now(), setTimeout: (f: () => void, ms: number) => setTimeout(f, ms), clearTimeout: (h: unknown) => clearTimeout(h as NodeJS.Timeout) };
      const e = new AtEngine({ write: (s) => sim.receive(s) }, clock);
      sim.on("tx", (c: string) => e.feed(c));
      let data = "";
      const urcs: string[] = [];
      e.onData = (b) => (data += b);
      e.onUrc = (l) => urcs.push(l);
      const run = (cmd: string, extra: object = {}) =>
        new Promise<AtReply>((res) => e.send({ cmd, timeout: 2000, ...extra, done: res }));
      expect((await run("AT")).final).toBe("OK"); // echo on: dropped by the engine
      expect((await run("ATE0")).final).toBe("OK");
      expect((await run("AT+OPEN=broker,1883")).final).toBe("OK");
      const payload = "\x10\x0c\x00\x04MQTT\x04\x02\x00<\r\nOK\r\n";
      await new Promise((r) => setTimeout(r, 30));
      expect((await run(`AT+SEND=${payload.length}`, { data: payload })).final).toBe("SEND OK");
      for (let i = 0; i < 100 && data.length < payload.length; i++) await new Promise((r) => setTimeout(r, 10));
      expect(data, JSON.stringify({ urcs, t: sim.transcriptText() })).toBe(payload);
      expect(sim.raws).toEqual([payload]);
      expect(sim.violations).toEqual([]);
      expect(urcs).toContain("CONNECT");
    } finally {
      echo.server.close();
    }
  });
});
