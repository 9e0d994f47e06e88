/**
 * Replays the vendor-transcript fixtures in test/fixtures/esp8266/ (format in
 * its README.md) against the ESP8266 driver over the real AT engine and a fake
 * clock: the driver must write exactly the commands and bytes the transcript
 * shows, and report exactly its transport events. Each fixture runs twice:
 * the module's output fed in the transcript's chunks, and byte by byte.
 */
import { expect } from "vitest";
import path from "node:path";
import { Esp8266, type EspOptions } from "../../src/modem/esp8266";
import { describeTranscripts } from "../support/transcript";

describeTranscripts("ESP8266 driver replays vendor transcripts", {
  dir: path.join(import.meta.dirname, "..", "fixtures", "esp8266"),
  primeEngine: true,
  start(engine, clock, o, log, events) {
    let opts: EspOptions = { ssid: "lab", password: "secret" };
    if (o) {
      opts = { ...(o as unknown as EspOptions) };
      if (o.hardReset) opts.hardReset = (done) => (events.push("hardreset"), done());
    }
    opts.log = log;
    return {
      modem: new Esp8266(engine, clock, opts),
      checkLog(lines) {
        // The password never reaches a log line (the SSID may).
        const pw = opts.password;
        for (const l of lines) expect(l.includes(pw), `log line ${JSON.stringify(l)} shows the password`).toBe(false);
      },
    };
  },
});
