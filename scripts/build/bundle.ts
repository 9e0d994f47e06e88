/**
 * Bundles one firmware entry the way every board build does: rollup 4 with
 * @rollup/plugin-typescript (tsconfig.firmware.json, ES2015, so no helpers
 * Espruino cannot run) and @rollup/plugin-terser with the options that keep
 * its output inside what Espruino 2v29 accepts. Members named with a leading
 * "_" are private and get mangled to short names.
 */
import { rollup, type Plugin, type RollupCache } from "rollup";
import typescript from "@rollup/plugin-typescript";
import terser from "@rollup/plugin-terser";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";

import { isMain, parseArgs, ROOT } from "../repo";

export { ROOT };
export const FIRMWARE_TSCONFIG = path.join(ROOT, "tsconfig.firmware.json");

/** Espruino methods and option keys the firmware uses by name. */
export const ESPRUINO_NAMES = ["setup", "on", "emit", "removeAllListeners", "readJSON", "read", "write", "rx", "tx", "path", "log"];
/** Keys of the device configuration (led.json), every level. Kept in step with scripts/config.ts by a test. */
export const CONFIG_NAMES = ["wifi", "ssid", "password", "gprs", "apn", "user", "broker", "host", "port", "username", "tls", "clientId", "keepAlive", "topic", "prefix", "ledPin", "ledActiveLow", "uartPath"];
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
    // Host-only code in src/ is guarded by `typeof FIRMWARE == "undefined"` (src/codec/index.ts):
    // defined here, the guard is the constant false and the minifier drops what it guards.
    global_defs: { FIRMWARE: true },
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
 * The tsconfig that compiles `entry`: tsconfig.firmware.json itself when its `include`
 * (src/, boards/) holds the entry, else a temporary one extending it with the entry
 * (a test fixture such as test/fixtures/size/codec-entry.ts). dispose() removes that.
 */
export function firmwareTsconfig(entry: string): { path: string; dispose: () => void } {
  const input = path.resolve(ROOT, entry);
  const rel = path.relative(ROOT, input);
  if (!input.endsWith(".ts") || /^(src|boards)[\\/]/.test(rel)) return { path: FIRMWARE_TSCONFIG, dispose: () => {} };
  const dir = mkdtempSync(path.join(tmpdir(), "fw-tsconfig-"));
  const file = path.join(dir, "tsconfig.json");
  writeFileSync(file, JSON.stringify({
    extends: FIRMWARE_TSCONFIG,
    include: [path.join(ROOT, "src"), path.join(ROOT, "boards")],
    files: [input],
  }));
  return { path: file, dispose: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface BundleOptions {
  /** Extra rollup plugins (virtual modules for board, modem and config). */
  plugins?: Plugin[];
  minify?: boolean;
  /** Rollup cache carried from one bundle to the next (parsed modules are reused). */
  cache?: { value?: RollupCache };
  /**
   * A directory private to this process where TypeScript keeps its incremental
   * state (tsbuildinfo and emitted files) between the bundles of one build, so
   * each bundle after the first re-checks and re-emits only what changed.
   * Without it every bundle compiles and type-checks the whole program afresh.
   */
  incrementalDir?: string;
  /**
   * The terser plugin instance to minify with (default: a new one). Bundles running
   * at the same time can share one: its worker pool (and their warm JIT) then lives
   * for as long as any of them is minifying, instead of one cold worker per bundle.
   */
  terser?: Plugin;
}

/** @rollup/plugin-terser with the build's terserOptions. */
export function terserPlugin(): Plugin {
  return terser(terserOptions);
}

/** Returns the bundled (and, by default, minified) script text for `entry`. */
export async function bundle(entry: string, opts: BundleOptions = {}): Promise<string> {
  const input = path.resolve(ROOT, entry);
  const config = firmwareTsconfig(input);
  const inc = opts.incrementalDir;
  try {
    const build = await rollup({
      input,
      cache: opts.cache?.value,
      plugins: [
        ...(opts.plugins ?? []),
        typescript({
          tsconfig: config.path,
          filterRoot: ROOT,
          include: ["**/*.ts"],
          exclude: ["node_modules/**"],
          // Emit what the bundle needs (tsconfig.firmware.json itself says noEmit, for tsc);
          // a type error anywhere in the program fails the bundle.
          compilerOptions: {
            noEmit: false,
            noEmitOnError: true,
            sourceMap: false,
            inlineSources: false,
            declaration: false,
            ...(inc ? { incremental: true, tsBuildInfoFile: path.join(inc, "firmware.tsbuildinfo") } : {}),
          },
          ...(inc ? { cacheDir: path.join(inc, "emit"), outputToFilesystem: true } : {}),
        }),
      ],
      treeshake: { moduleSideEffects: false, propertyReadSideEffects: false },
      onwarn(w, warn) {
        if (w.code === "EMPTY_BUNDLE") return;
        warn(w);
      },
    });
    if (opts.cache) opts.cache.value = build.cache;
    try {
      const { output } = await build.generate({
        format: "es",
        plugins: opts.minify === false ? [] : [opts.terser ?? terserPlugin()],
      });
      // rollup ends a chunk with a newline after terser has run; the script itself ends at its last ";"
      return opts.minify === false ? output[0].code : output[0].code.replace(/\n$/, "");
    } finally {
      await build.close();
    }
  } finally {
    config.dispose();
  }
}

/** CLI: `tsx scripts/build/bundle.ts src/codec/index.ts [--print]` prints minified bytes of an entry's exports. */
async function main(): Promise<void> {
  const { values: args, positionals } = parseArgs({ options: { print: { type: "boolean" } }, allowPositionals: true });
  const entry = positionals[0];
  if (!entry) {
    process.stderr.write("usage: tsx scripts/build/bundle.ts <entry.ts> [--print]\n");
    process.exit(2);
  }
  const code = await bundle(entry);
  console.log(`${entry}: ${Buffer.byteLength(code)} bytes minified`);
  if (args.print) console.log(code);
}

if (isMain(import.meta.url)) {
  main().catch((e) => {
    process.stderr.write(String(e && e.stack ? e.stack : e) + "\n");
    process.exit(1);
  });
}
