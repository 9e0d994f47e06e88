/**
 * A throw-away TLS server certificate for tests, made at test time with
 * Debian's `openssl` (nothing secret is committed): a self-signed RSA 2048
 * certificate for "broker.example" (and 127.0.0.1) in a fresh temp dir,
 * made once per test process and removed when it exits.
 *
 *   const { cert, key, certPem, keyPem, dir } = testCertificate();
 *   const front = await startTlsFront(brokerPort);   // a TLS port in front of a plain broker
 *   front.port; front.handshakes → [{ sni: "broker.local" | false }]; await front.close();
 *
 * The simulated modems, like the real ones, do not check it; it only has to
 * let Mosquitto (certfile/keyfile) and node:tls servers speak TLS.
 */
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import tls from "node:tls";
import os from "node:os";
import path from "node:path";

export interface TestCertificate {
  dir: string;
  /** Paths of the PEM files. */
  cert: string;
  key: string;
  certPem: string;
  keyPem: string;
}

let made: TestCertificate | undefined;

export function testCertificate(): TestCertificate {
  if (made) return made;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tls-"));
  const cert = path.join(dir, "broker.crt");
  const key = path.join(dir, "broker.key");
  try {
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
        "-subj", "/CN=broker.example", "-addext", "subjectAltName=DNS:broker.example,IP:127.0.0.1"],
      { timeout: 20_000, stdio: ["ignore", "ignore", "pipe"] },
    );
  } catch (e) {
    throw new Error(`openssl could not make a test certificate (apt-get install -y openssl): ${(e as Error).message}`);
  }
  // readable by a mosquitto that dropped its privileges
  fs.chmodSync(dir, 0o755);
  fs.chmodSync(key, 0o644);
  made = { dir, cert, key, certPem: fs.readFileSync(cert, "utf8"), keyPem: fs.readFileSync(key, "utf8") };
  process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
  return made;
}

export interface TlsFront {
  port: number;
  /** One entry per completed handshake: the SNI the client sent (false: none). */
  handshakes: { sni: string | false }[];
  close(): Promise<void>;
}

/**
 * A TLS server on a free loopback port in front of a plain MQTT broker (as a
 * cloud broker's TLS port): it terminates TLS with the test certificate and
 * pipes the bytes to 127.0.0.1:brokerPort, recording each handshake's SNI.
 */
export async function startTlsFront(brokerPort: number): Promise<TlsFront> {
  const c = testCertificate();
  const handshakes: { sni: string | false }[] = [];
  const socks = new Set<net.Socket>();
  const server = tls.createServer({ cert: c.certPem, key: c.keyPem }, (t) => {
    handshakes.push({ sni: (t as tls.TLSSocket & { servername: string | false }).servername });
    const up = net.connect(brokerPort, "127.0.0.1");
    socks.add(t).add(up);
    t.pipe(up).pipe(t);
    const end = () => (t.destroy(), up.destroy());
    t.on("error", end).on("close", end);
    up.on("error", end).on("close", end);
  });
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return {
    port: (server.address() as net.AddressInfo).port,
    handshakes,
    close: () => new Promise<void>((ok) => (socks.forEach((x) => x.destroy()), server.close(() => ok()))),
  };
}
