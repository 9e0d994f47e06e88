/**
 * Bundles one firmware entry the way every board build does: TypeScript at
 * ES2015 (so no helpers Espruino cannot run), rollup into one script, terser
 * with the options that keep its output inside what Espruino 2v29 accepts.
 * Members named with a leading "_" are private and get mangled to short names.
 *
 * TypeScript is compiled by one shared in-memory program (tsconfig.firmware.json)
 * instead of a fresh compiler per bundle: the build makes a dozen bundles, and
 * the same program also gives the firmware type-check its diagnostics.
 */
import { rollup, type Plugin, type RollupCache } from "rollup";
import { minify as terserMinify, type MinifyOptions } from "terser";
import ts from "typescript";
import { fileURLToPath } from "node:url";
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createHash } from "node:crypto";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** Espruino methods and option keys the firmware uses by name. */
export const ESPRUINO_NAMES = ["setup", "on", "emit", "removeAllListeners", "readJSON", "read", "write", "rx", "tx", "path", "log"];
/** Keys of the device configuration (led.json), every level. Kept in step with scripts/config.ts by a test. */
export const CONFIG_NAMES = ["wifi", "ssid", "password", "gprs", "apn", "user", "broker", "host", "port", "username", "clientId", "keepAlive", "topic", "prefix", "ledPin", "ledActiveLow", "uartPath"];
const FIXED_NAMES = [...ESPRUINO_NAMES, ...CONFIG_NAMES];

export const terserOptions = {
  ecma: 2015 as const,
  module: false,
  toplevel: true,
  compress: {
    passes: 3,
    // Espruino does not hoist functions: never move or inline declarations across order.
    hoist_funs: false,
    hoist_vars: false,
    // Keep the output free of syntax Espruino lacks.
    unsafe_arrows: false,
    // terser turns `x === "OK"` into `"OK" === x`; after `case N:` that shape hits the
    // Espruino 2v29 switch bug (the string loses its value). Keep constants on the right.
    lhs_constants: false,
  },
  // Every property is renamed except: names terser knows from JavaScript's built-ins
  // and the DOM (its default), the Espruino API the firmware calls or passes
  // options to, and the keys of led.json, which arrive from outside the script.
  mangle: { properties: { reserved: FIXED_NAMES } },
  // ascii_only: the script reaches Storage byte for byte; a raw "ÿ" written as UTF-8 would be two
  // characters to Espruino's lexer, so every non-ASCII character is written as an escape.
  format: { comments: false, ascii_only: true },
};

/**
 * One TypeScript program over the firmware sources (src/, boards/ and any extra
 * entry), emitting each file to memory once. Files changed on disk since the
 * program was made are noticed and the program is rebuilt (reusing what it can).
 */
export class TsEmitter {
  readonly options: ts.CompilerOptions;
  private roots: string[];
  private program: ts.Program | undefined;
  private host: ts.CompilerHost;
  private sfCache = new Map<string, ts.SourceFile>();
  private emitted = new Map<string, { text: string; js: string }>();
  readonly configErrors: ts.Diagnostic[] = [];

  constructor(tsconfig = path.join(ROOT, "tsconfig.firmware.json")) {
    const parsed = ts.getParsedCommandLineOfConfigFile(tsconfig, {}, {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => { this.configErrors.push(d); },
    });
    if (!parsed) throw new Error("cannot read " + tsconfig + ": " + this.configErrors.map(fmtDiag).join("\n"));
    this.configErrors.push(...parsed.errors);
    this.options = {
      ...parsed.options,
      noEmit: false, declaration: false, declarationMap: false, sourceMap: false, inlineSourceMap: false,
      outDir: undefined, emitDeclarationOnly: false, noEmitOnError: false, composite: false, incremental: false,
      tsBuildInfoFile: undefined,
    };
    this.roots = parsed.fileNames.map((f) => path.resolve(f));
    const host = ts.createCompilerHost(this.options);
    const orig = host.getSourceFile.bind(host);
    host.getSourceFile = (fileName, lang, onError, shouldCreate) => {
      const text = ts.sys.readFile(fileName);
      if (text === undefined) return orig(fileName, lang, onError, shouldCreate);
      const hit = this.sfCache.get(fileName);
      if (hit && hit.text === text) return hit;
      const sf = ts.createSourceFile(fileName, text, lang, true);
      this.sfCache.set(fileName, sf);
      return sf;
    };
    this.host = host;
  }

  /** Adds a file (e.g. an entry outside src/) to the program's roots. */
  addRoot(file: string): void {
    const f = path.resolve(file);
    if (!this.roots.includes(f)) {
      this.roots.push(f);
      this.program = undefined;
    }
  }

  /** The current program, rebuilt when a source it holds changed on disk. */
  getProgram(): ts.Program {
    const changed = (sf: ts.SourceFile) => !sf.fileName.includes("/node_modules/") && ts.sys.readFile(sf.fileName) !== sf.text;
    if (this.program && this.program.getSourceFiles().some(changed)) {
      this.program = ts.createProgram(this.roots, this.options, this.host, this.program);
      this.emitted.clear();
    }
    if (!this.program) {
      this.program = ts.createProgram(this.roots, this.options, this.host);
      this.emitted.clear();
    }
    return this.program;
  }

  /** Type errors (syntactic, semantic, options) of the whole program, formatted. */
  diagnostics(): string[] {
    const p = this.getProgram();
    return [...this.configErrors, ...ts.getPreEmitDiagnostics(p)].map(fmtDiag);
  }

  /** The ES2015 JavaScript TypeScript emits for one .ts file. */
  emit(file: string): string {
    const f = path.resolve(file);
    const text = readFileSync(f, "utf8");
    const hit = this.emitted.get(f);
    if (hit && hit.text === text) return hit.js;
    let sf = this.getProgram().getSourceFile(f);
    if (!sf || sf.text !== text) {
      this.addRoot(f);
      this.program = ts.createProgram(this.roots, this.options, this.host, this.program);
      this.emitted.clear();
      sf = this.program.getSourceFile(f);
      if (!sf) throw new Error("TypeScript program cannot load " + f);
    }
    let js: string | undefined;
    const res = this.program!.emit(sf, (name, data) => { if (name.endsWith(".js")) js = data; }, undefined, false);
    if (js === undefined) {
      throw new Error("TypeScript emitted nothing for " + f + "\n" + res.diagnostics.map(fmtDiag).join("\n"));
    }
    this.emitted.set(f, { text, js });
    return js;
  }

  /** Rollup plugin: resolves extensionless relative imports to .ts files and loads their emitted JS. */
  plugin(): Plugin {
    return {
      name: "ts-emitter",
      resolveId: (source, importer) => {
        if (!importer || source.startsWith("\0")) return null;
        if (!source.startsWith(".") && !path.isAbsolute(source)) return null;
        const base = path.resolve(importer.startsWith("\0") ? ROOT : path.dirname(importer), source);
        for (const c of [base, base + ".ts", path.join(base, "index.ts")]) {
          if (c.endsWith(".ts") && existsSync(c) && statSync(c).isFile()) return c;
        }
        return null;
      },
      load: (id) => (id.endsWith(".ts") && !id.startsWith("\0") ? { code: this.emit(id), map: null } : null),
    };
  }
}

function fmtDiag(d: ts.Diagnostic): string {
  const msg = ts.flattenDiagnosticMessageText(d.messageText, "\n");
  if (d.file && d.start !== undefined) {
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    return `${path.relative(ROOT, d.file.fileName)}(${line + 1},${character + 1}): error TS${d.code}: ${msg}`;
  }
  return `error TS${d.code}: ${msg}`;
}

let shared: TsEmitter | undefined;
/** The emitter bundle() uses when none is given (one per process). */
export function sharedEmitter(): TsEmitter {
  return (shared ??= new TsEmitter());
}

export interface BundleOptions {
  /** Extra rollup plugins (virtual modules for board, modem and config). */
  plugins?: Plugin[];
  minify?: boolean;
  /** The TypeScript program to compile with (default: one shared per process). */
  ts?: TsEmitter;
  /** Rollup cache carried from one bundle to the next (parsed modules are reused). */
  cache?: { value?: RollupCache };
}

/** Returns the bundled (and, by default, minified) script text for `entry`. */
export async function bundle(entry: string, opts: BundleOptions = {}): Promise<string> {
  const emitter = opts.ts ?? sharedEmitter();
  const input = path.resolve(ROOT, entry);
  if (input.endsWith(".ts")) emitter.addRoot(input);
  const build = await rollup({
    input,
    cache: opts.cache?.value,
    plugins: [...(opts.plugins ?? []), emitter.plugin()],
    treeshake: { moduleSideEffects: false, propertyReadSideEffects: false },
    onwarn(w, warn) {
      if (w.code === "EMPTY_BUNDLE") return;
      warn(w);
    },
  });
  if (opts.cache) opts.cache.value = build.cache;
  const { output } = await build.generate({ format: "es" });
  await build.close();
  if (opts.minify === false) return output[0].code;
  // terser in this process (its JIT stays warm across a build's bundles; the rollup
  // plugin would start a cold worker for every bundle).
  return minifyCached(output[0].code);
}

const CACHE_DIR = path.join(ROOT, "node_modules/.cache/espruino-fw");
const TERSER_VERSION: string = JSON.parse(readFileSync(path.join(ROOT, "node_modules/terser/package.json"), "utf8")).version;

/** Keeps the newest `keep` entries of the minify cache. */
export function pruneMinifyCache(keep = 300): void {
  if (!existsSync(CACHE_DIR)) return;
  const files = readdirSync(CACHE_DIR).map((f) => path.join(CACHE_DIR, f)).map((f) => ({ f, t: statSync(f).mtimeMs }));
  files.sort((a, b) => b.t - a.t);
  for (const { f } of files.slice(keep)) rmSync(f, { force: true });
}

/** terser with terserOptions, memoised on disk by (terser version, options, input). */
export async function minifyCached(code: string): Promise<string> {
  const key = createHash("sha256")
    .update(TERSER_VERSION)
    .update(JSON.stringify(terserOptions, (_k, v) => (v instanceof RegExp ? String(v) : v)))
    .update(code)
    .digest("hex");
  const file = path.join(CACHE_DIR, key + ".js");
  if (existsSync(file)) return readFileSync(file, "utf8");
  const min = await terserMinify(code, terserOptions as MinifyOptions);
  if (min.code === undefined) throw new Error("terser produced no code");
  try {
    mkdirSync(CACHE_DIR, { recursive: true });
    writeFileSync(file + "." + process.pid, min.code);
    // rename is atomic: a concurrent build never reads half a file
    renameSync(file + "." + process.pid, file);
  } catch { /* a read-only tree just means no cache */ }
  return min.code;
}

/** CLI: `tsx scripts/bundle.ts src/codec/index.ts [--print]` prints minified bytes of an entry's exports. */
async function main(): Promise<void> {
  const entry = process.argv[2];
  if (!entry) {
    process.stderr.write("usage: tsx scripts/bundle.ts <entry.ts> [--print]\n");
    process.exit(2);
  }
  const code = await bundle(entry);
  console.log(`${entry}: ${Buffer.byteLength(code)} bytes minified`);
  if (process.argv.includes("--print")) console.log(code);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
    process.exit(1);
  });
}
