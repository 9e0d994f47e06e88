/**
 * Replays the vendor-transcript fixtures in test/fixtures/sim800/ (format in
 * its README.md) against the SIM800 driver over the real AT engine and a fake
 * clock: the driver must write exactly the commands and bytes the transcript
 * shows and report exactly its transport events. Each fixture runs twice: the
 * module's output fed in the transcript's chunks, and byte by byte.
 */
import { expect } from "vitest";
import path from "node:path";
import { Sim800, type Sim800Options } from "../../src/modem/sim800";
import { describeTranscripts } from "../support/transcript";

describeTranscripts("SIM800 driver replays vendor transcripts", {
  dir: path.join(import.meta.dirname, "..", "fixtures", "sim800"),
  leadingCrlf: true,
  jsonUart: true,
  stepFileInWhere: true,
  start(engine, clock, o, log, events) {
    let opts: Sim800Options = { apn: "internet", user: "jo", password: "s3cret!" };
    if (o) {
      opts = { ...opts, ...o };
      if (o.powerOn) opts.powerOn = (done) => (events.push("poweron"), done());
    }
    opts.log = log;
    return {
      modem: new Sim800(engine, clock, opts),
      checkLog(lines) {
        // The APN credentials never reach a log line (the engine logs AT+CSTT=<hidden>).
        for (const l of lines) {
          expect(l.includes(opts.password!), `log line ${JSON.stringify(l)} shows the password`).toBe(false);
          expect(l.includes('"' + opts.user! + '"'), `log line ${JSON.stringify(l)} shows the user`).toBe(false);
        }
      },
    };
  },
});
