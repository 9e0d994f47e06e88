/**
 * The capture: `npm start -- --pcap FILE` (scripts/demo/start.ts, scripts/demo/pcap.ts)
 * writes the board's MQTT traffic as a pcap that Debian's tshark — Wireshark's
 * dissectors, an independent decoder of every byte the firmware sends — reads
 * packet by packet: the handshake, checksums, sequence numbers, and each MQTT
 * packet the README's walk-through shows. Needs `tshark` (.ci/run installs it).
 */
import { afterAll, describe, expect, it } from "vitest";
import { execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import mqtt from "mqtt";
import { PcapWriter, inetChecksum } from "../../scripts/demo/pcap";

const ROOT = path.resolve(import.meta.dirname, "../..");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "pcap-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

/** tshark's output (stderr, e.g. the warning about running as root, is dropped). */
function tshark(args: string[]): string {
  try {
    return execFileSync("tshark", args, { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "pipe", "ignore"], maxBuffer: 64 << 20 });
  } catch (e) {
    throw new Error(`tshark ${args.join(" ")} failed (apt-get install -y tshark): ${(e as Error).message}`);
  }
}

const CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE"];

/** Frames tshark flags: malformed, or any expert info of warning level or worse (bad checksums included). */
function complaints(file: string): string {
  return tshark(["-r", file, ...CHECKSUMS, "-Y", "_ws.malformed || _ws.expert.severity >= warning || tcp.analysis.flags && !tcp.analysis.window_update"]).trim();
}

interface MqttMsg {
  frame: number;
  src: string;
  type: number;
  fields: Record<string, unknown>;
  tcpPayload: string;
}

/** Every MQTT packet tshark decodes in the file, in order (several per frame when the firmware batched them). */
function mqttPackets(file: string): MqttMsg[] {
  const frames = JSON.parse(tshark(["-r", file, "-Y", "mqtt", "-T", "json", "--no-duplicate-keys"])) as { _source: { layers: Record<string, any> } }[];
  const out: MqttMsg[] = [];
  for (const f of frames) {
    const l = f._source.layers;
    const msgs = Array.isArray(l.mqtt) ? l.mqtt : [l.mqtt];
    for (const m of msgs) {
      out.push({
        frame: Number(l.frame["frame.number"]),
        src: l.ip["ip.src"],
        type: Number(m["mqtt.hdrflags_tree"]["mqtt.msgtype"]),
        fields: m,
        tcpPayload: String(l.tcp["tcp.payload"] ?? ""),
      });
    }
  }
  return out;
}

const text = (hexColons: unknown) => Buffer.from(String(hexColons ?? "").replace(/:/g, ""), "hex").toString("latin1");

describe("PcapWriter", () => {
  it("writes well-formed Ethernet/IPv4/TCP around the bytes: handshake, segments, checksums, seq/ack, FIN", () => {
    const file = path.join(dir, "unit.pcap");
    const cap = new PcapWriter(file);
    const up = Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 7) & 0xff));
    const down = Buffer.from("\x20\x02\x00\x00", "latin1");
    // (a port no dissector claims: these bytes are not MQTT)
    const f = cap.flow(40000);
    f.toBroker(up); // three segments: 1460 + 1460 + 80
    f.toBoard(down);
    f.close("board");
    f.toBroker(Buffer.from("late")); // after the close: not written
    const g = cap.flow(40000); // a second connection, closed by the broker
    g.toBoard(down);
    g.close("broker");
    cap.close();

    const lines = tshark(["-r", file, ...CHECKSUMS, "-T", "fields", "-E", "separator=|",
      "-e", "tcp.srcport", "-e", "tcp.dstport", "-e", "tcp.flags.str", "-e", "tcp.len", "-e", "tcp.seq", "-e", "tcp.ack",
      "-e", "ip.checksum.status", "-e", "tcp.checksum.status"]).trim().split("\n").map((x) => x.split("|"));
    // status 1 = good, for every IPv4 header and every TCP segment
    expect(lines.map((x) => x[6] + x[7])).toEqual(lines.map(() => "11"));
    expect(lines.map((x) => [x[0], x[1], x[2].replace(/[^A-Z]/g, ""), x[3], x[4], x[5]].join(" "))).toEqual([
      "49152 40000 S 0 0 0",
      "40000 49152 AS 0 0 1",
      "49152 40000 A 0 1 1",
      "49152 40000 AP 1460 1 1",
      "49152 40000 AP 1460 1461 1",
      "49152 40000 AP 80 2921 1",
      "40000 49152 AP 4 1 3001",
      "49152 40000 AF 0 3001 5",
      "40000 49152 AF 0 5 3002",
      "49152 40000 A 0 3002 6",
      "49153 40000 S 0 0 0",
      "40000 49153 AS 0 0 1",
      "49153 40000 A 0 1 1",
      "40000 49153 AP 4 1 1",
      "40000 49153 AF 0 5 1",
      "49153 40000 AF 0 1 6",
      "40000 49153 A 0 6 2",
    ]);
    // the bytes of each direction, as tshark reassembles the stream
    const follow = tshark(["-r", file, "-q", "-z", "follow,tcp,raw,0"]);
    const chunks = follow.split("\n").filter((x) => /^\t?[0-9a-f]+$/.test(x));
    expect(chunks.filter((x) => !x.startsWith("\t")).join("")).toBe(up.toString("hex"));
    expect(chunks.filter((x) => x.startsWith("\t")).join("").trim()).toBe("20020000");
    expect(complaints(file)).toBe("");
  });

  it("computes the Internet checksum of RFC 1071 (its worked example)", () => {
    // RFC 1071 section 3: the ones' complement sum of 0001 f203 f4f5 f6f7 is ddf2
    expect(inetChecksum(Buffer.from("0001f203f4f5f6f7", "hex"))).toBe(~0xddf2 & 0xffff);
    // odd lengths are padded with a zero byte; split buffers add up as if joined
    expect(inetChecksum(Buffer.from("0001f2", "hex"), Buffer.from("03f4f5f6f7", "hex"))).toBe(~0xddf2 & 0xffff);
    expect(inetChecksum(Buffer.from("01", "hex"))).toBe(~0x0100 & 0xffff);
  });
});

describe("npm start -- --pcap FILE", () => {
  it("captures the demo's session; tshark decodes CONNECT, CONNACK 20 02 00 00, SUBSCRIBE led, the phone's PUBLISH, the state report, PINGREQ/PINGRESP", async () => {
    const file = path.join(dir, "demo.pcap");
    // the real command line, bounded by --duration; keep-alive 5 s so a PINGREQ comes round
    const proc = spawn(path.join(ROOT, "node_modules/.bin/tsx"),
      ["scripts/demo/start.ts", "--no-build", "--pcap", file, "--duration", "14", "--keepalive", "5", "--port", "0", "--ws-port", "0", "--baud", "0"],
      { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    proc.stdout.on("data", (d) => (out += d));
    proc.stderr.on("data", (d) => (out += d));
    const exited = new Promise<number | null>((ok) => proc.on("exit", (code) => ok(code)));
    const until = async (re: RegExp, ms: number) => {
      const end = Date.now() + ms;
      while (!re.test(out)) {
        if (Date.now() > end || proc.exitCode !== null) throw new Error(`timed out waiting for ${re}; output:\n${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      await until(/← SUBACK/, 20_000);
      const port = Number(/broker {2}mqtt:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
      const phone = await mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, { reconnectPeriod: 0 });
      await phone.publishAsync("led", "on", { qos: 1 });
      await phone.endAsync();
      await until(/→ PUBLISH led\/state "on"/, 10_000);
      await until(/← PINGRESP/, 15_000);
      expect(await exited, out).toBe(0); // stopped by --duration, capture closed
    } finally {
      if (proc.exitCode === null) proc.kill("SIGKILL");
    }
    expect(out).toContain(`capture ${file}`);
    const clientId = /→ CONNECT client=(\S+) keepAlive=5 /.exec(out)![1];

    const board = "10.0.0.2", brokerIp = "10.0.0.1";
    const pk = mqttPackets(file);
    const connect = pk.find((p) => p.type === 1)!;
    expect(connect.src).toBe(board);
    expect(connect.fields["mqtt.clientid"]).toBe(clientId);
    expect(connect.fields["mqtt.kalive"]).toBe("5");
    expect(connect.fields["mqtt.protoname"]).toBe("MQTT");
    expect(connect.fields["mqtt.ver"]).toBe("4");
    expect(connect.fields["mqtt.willtopic"]).toBe("led/status");

    const connack = pk.find((p) => p.type === 2)!;
    expect(connack.src).toBe(brokerIp);
    expect(connack.tcpPayload).toBe("20:02:00:00");
    expect(connack.fields["mqtt.conack.val"]).toBe("0");

    const subscribe = pk.find((p) => p.type === 8)!;
    expect(subscribe.src).toBe(board);
    expect(subscribe.fields["mqtt.topic"]).toBe("led");
    expect(subscribe.fields["mqtt.sub.qos"]).toBe("1");
    expect(pk.some((p) => p.type === 9 && p.src === brokerIp)).toBe(true);

    const publishes = pk.filter((p) => p.type === 3).map((p) => ({ src: p.src, topic: p.fields["mqtt.topic"], msg: text(p.fields["mqtt.msg"]), retain: (p.fields["mqtt.hdrflags_tree"] as Record<string, string>)["mqtt.retain"] }));
    expect(publishes).toContainEqual({ src: board, topic: "led/status", msg: "online", retain: "1" });
    // the phone's command, as the broker forwards it to the board, then the board's report
    const cmd = publishes.findIndex((p) => p.src === brokerIp && p.topic === "led" && p.msg === "on");
    expect(cmd, JSON.stringify(publishes)).toBeGreaterThanOrEqual(0);
    expect(publishes.slice(cmd + 1)).toContainEqual({ src: board, topic: "led/state", msg: "on", retain: "1" });

    // a PINGREQ from the board answered by a PINGRESP from the broker
    const ping = pk.findIndex((p) => p.type === 12 && p.src === board);
    expect(ping).toBeGreaterThanOrEqual(0);
    expect(pk.slice(ping + 1).find((p) => p.src === brokerIp)?.type).toBe(13);
    expect(pk.find((p) => p.type === 12)!.tcpPayload).toBe("c0:00");

    // the connection was opened with a handshake on port 1883 and closed at the end
    const tcp = tshark(["-r", file, "-T", "fields", "-e", "tcp.dstport", "-e", "tcp.flags.str"]).trim().split("\n");
    expect(tcp[0]).toMatch(/^1883\t.*S/);
    expect(tcp.at(-2)).toMatch(/F/);
    expect(complaints(file)).toBe("");
  }, 60_000);
});
