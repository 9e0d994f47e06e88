/**
 * Command-line options of `npm start` and `npm run broker`: parsed and checked
 * before anything starts (no build, no listener), each bad value refused with one
 * message naming the option and what it accepts.
 */
import net from "node:net";
import { readdirSync } from "node:fs";
import path from "node:path";
import { parseArgs, ROOT } from "../repo";
import { isModemKind, MODEM_KINDS, type ModemKind } from "../modems";

/** A refused command line: the message to print (the caller adds how to get --help). */
export class UsageError extends Error {}

export interface OptionSpec {
  /** "--port" */
  flag: string;
  /** Name of the value in the help ("N", "ADDRESS"); absent for a flag without a value. */
  arg?: string;
  help: string;
  /** Property the value goes to (default: the flag camel-cased, "--ws-port" → wsPort). */
  key?: string;
  /** Turns the text into the value; throws UsageError (with the option's name) when it is not accepted. */
  parse?: (text: string, flag: string) => unknown;
}

/** A whole number from min to max. */
export function wholeNumber(min: number, max: number, what = ""): (text: string, flag: string) => number {
  return (text, flag) => {
    const n = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!(n >= min && n <= max)) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}${what}, not ${JSON.stringify(text)}`);
    return n;
  };
}

/** A TCP port: 0 (any free port) to 65535. */
export const portNumber = wholeNumber(0, 65535, " (0: any free port)");

/** An IP address to listen on. */
export function listenAddress(text: string, flag: string): string {
  if (net.isIP(text) === 0 && text !== "localhost") {
    throw new UsageError(`${flag} must be an IP address of this machine, such as 127.0.0.1 (this machine only) or 0.0.0.0 (every network), not ${JSON.stringify(text)}`);
  }
  return text;
}

/** Board ids: the file names in boards/. */
export function boardIds(): string[] {
  return readdirSync(path.join(ROOT, "boards")).filter((n) => n.endsWith(".ts") && !n.endsWith(".d.ts")).map((n) => n.slice(0, -3)).sort();
}

export function boardId(text: string, flag: string): string {
  const known = boardIds();
  if (!known.includes(text)) throw new UsageError(`${flag}: unknown board ${JSON.stringify(text)}; the boards are ${known.join(", ")}`);
  return text;
}

export const MODEMS = MODEM_KINDS;
export function modemKind(text: string, flag: string): ModemKind {
  if (!isModemKind(text)) throw new UsageError(`${flag} must be ${MODEMS.slice(0, -1).join(", ")} or ${MODEMS.at(-1)}, not ${JSON.stringify(text)}`);
  return text;
}

/**
 * Parses argv against specs (node:util's parseArgs splits the words): values by
 * spec.key, or the flag without the dashes, camel-cased ("--ws-port" → wsPort).
 * "--help" / "-h" gives { help: true }. Throws UsageError for an unknown option, a
 * missing value or a refused one.
 */
export function parseOptions(argv: string[], specs: OptionSpec[]): Record<string, unknown> & { help?: boolean } {
  const out: Record<string, unknown> = {};
  const key = (flag: string) => flag.replace(/^--/, "").replace(/-(\w)/g, (_, c: string) => c.toUpperCase());
  const known: Record<string, { type: "string" | "boolean"; short?: string }> = { help: { type: "boolean", short: "h" } };
  for (const spec of specs) known[spec.flag.replace(/^--/, "")] = { type: spec.arg ? "string" : "boolean" };
  const { tokens } = parseArgs({ args: argv, options: known, strict: false, allowPositionals: true, tokens: true });
  for (const token of tokens) {
    if (token.kind === "positional") throw new UsageError(`unknown option ${JSON.stringify(token.value)}`);
    if (token.kind === "option-terminator") throw new UsageError('unknown option "--"');
    if (token.name === "help") return { help: true };
    const spec = specs.find((s) => s.flag === token.rawName);
    if (!spec) throw new UsageError(`unknown option ${JSON.stringify(token.inlineValue ? `${token.rawName}=${token.value}` : token.rawName)}`);
    if (!spec.arg) {
      if (token.inlineValue) throw new UsageError(`${spec.flag} takes no value`);
      out[spec.key ?? key(spec.flag)] = true;
      continue;
    }
    const text = token.value;
    if (text === undefined || (!token.inlineValue && text.startsWith("--"))) throw new UsageError(`${spec.flag} needs a value (${spec.arg})`);
    out[spec.key ?? key(spec.flag)] = spec.parse ? spec.parse(text, spec.flag) : text;
  }
  return out;
}

/** The help text: usage line, options, then any extra lines. */
export function helpText(usage: string, specs: OptionSpec[], extra: string[] = []): string {
  const left = specs.map((s) => `  ${s.flag}${s.arg ? " " + s.arg : ""}`);
  const w = Math.max(...left.map((l) => l.length)) + 2;
  return [`usage: ${usage}`, "", "options:", ...specs.map((s, i) => left[i].padEnd(w) + s.help), `  ${"--help".padEnd(w - 2)}this text`, ...extra].join("\n");
}
