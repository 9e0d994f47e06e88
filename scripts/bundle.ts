/**
 * Bundles one firmware entry the way every board build does: TypeScript at
 * ES2015 (so no helpers Espruino cannot run), rollup into one script, terser
 * with the options that keep its output inside what Espruino 2v29 accepts.
 * Members named with a leading "_" are private and get mangled to short names.
 */
import { rollup, type Plugin } from "rollup";
import typescript from "@rollup/plugin-typescript";
import terser from "@rollup/plugin-terser";
import { fileURLToPath } from "node:url";
import path from "node:path";

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

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
  },
  mangle: { properties: { regex: /^_/ } },
  format: { comments: false },
};

export interface BundleOptions {
  /** Extra rollup plugins (virtual modules for board, modem and config). */
  plugins?: Plugin[];
  minify?: boolean;
}

/** Returns the bundled (and, by default, minified) script text for `entry`. */
export async function bundle(entry: string, opts: BundleOptions = {}): Promise<string> {
  const build = await rollup({
    input: path.resolve(ROOT, entry),
    plugins: [
      ...(opts.plugins ?? []),
      typescript({
        tsconfig: path.join(ROOT, "tsconfig.firmware.json"),
        compilerOptions: { noEmit: false, declaration: false, sourceMap: false, outDir: undefined },
        include: ["src/**/*.ts", "boards/**/*.ts"],
        noEmitOnError: true,
      }),
    ],
    treeshake: { moduleSideEffects: false, propertyReadSideEffects: false },
    onwarn(w, warn) {
      if (w.code === "EMPTY_BUNDLE") return;
      warn(w);
    },
  });
  const { output } = await build.generate({
    format: "es",
    plugins: opts.minify === false ? [] : [terser(terserOptions)],
  });
  await build.close();
  return output[0].code;
}

/** CLI: `tsx scripts/bundle.ts src/codec/index.ts [--keep Name,...]` prints minified bytes of an entry's exports. */
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const entry = process.argv[2];
  if (!entry) {
    console.error("usage: tsx scripts/bundle.ts <entry.ts>");
    process.exit(2);
  }
  const code = await bundle(entry);
  console.log(`${entry}: ${Buffer.byteLength(code)} bytes minified`);
  if (process.argv.includes("--print")) console.log(code);
}
