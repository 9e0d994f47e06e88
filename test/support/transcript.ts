/**
 * Reads a modem transcript fixture (test/fixtures/<modem>/*.txt; the format is
 * in those folders' README): one step per directive line, `@include` expanded,
 * `#` comments and blank lines skipped.
 */
import fs from "node:fs";
import path from "node:path";

export interface Step {
  file: string;
  line: number;
  op: string;
  arg: string;
}

export function loadTranscript(dir: string, file: string): Step[] {
  const out: Step[] = [];
  fs.readFileSync(path.join(dir, file), "latin1")
    .split("\n")
    .forEach((raw, i) => {
      const text = raw.replace(/\r$/, "");
      if (!text.trim() || text.startsWith("#")) return;
      if (text.startsWith("@include ")) {
        out.push(...loadTranscript(dir, text.slice(9).trim()));
        return;
      }
      const m = /^(@opts|!|>>fill|>>|>|<<|<|~|=)(?: (.*))?$/.exec(text);
      if (!m) throw new Error(`${file}:${i + 1}: cannot parse ${JSON.stringify(text)}`);
      out.push({ file, line: i + 1, op: m[1], arg: m[2] ?? "" });
    });
  return out;
}
