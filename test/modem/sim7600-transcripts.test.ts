/**
 * Replays the transcript fixtures in test/fixtures/sim7600/ (format in its
 * README.md) against the SIM7600 / A7670 driver over the real AT engine and a
 * fake clock: the driver must write exactly the commands and bytes the
 * transcript shows and report exactly its transport events. Each fixture runs
 * three times: the module's output fed in the transcript's chunks, byte by
 * byte, and in seeded random chunks.
 */
import { expect } from "vitest";
import path from "node:path";
import { Sim7600, type Sim7600Options } from "../../src/modem/sim7600";
import { describeTranscripts } from "../support/transcript";

describeTranscripts("SIM7600 / A7670 driver replays transcripts", {
  dir: path.join(import.meta.dirname, "..", "fixtures", "sim7600"),
  leadingCrlf: true,
  jsonUart: true,
  stepFileInWhere: true,
  randomChunks: true,
  start(engine, clock, o, log, events) {
    let opts: Sim7600Options = { apn: "internet", user: "jo", password: "s3cret!" };
    if (o) {
      opts = { ...opts, ...o };
      if (o.powerOn) opts.powerOn = (done) => (events.push("poweron"), done());
    }
    opts.log = log;
    return {
      modem: new Sim7600(engine, clock, opts),
      checkLog(lines) {
        // The APN credentials never reach a log line (the engine logs AT+CGAUTH=<hidden>).
        for (const l of lines) {
          expect(l.includes(opts.password!), `log line ${JSON.stringify(l)} shows the password`).toBe(false);
          if (opts.user) expect(l.includes('"' + opts.user + '"'), `log line ${JSON.stringify(l)} shows the user`).toBe(false);
        }
      },
    };
  },
});
