/**
 * What every host tool shares: the repository's root, the command-line parser
 * (node:util's parseArgs), and the "run as a program" check.
 */
import path from "node:path";
import { fileURLToPath } from "node:url";

export { parseArgs } from "node:util";

/** The repository's root directory (this file is scripts/repo.ts). */
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** True when the module at `moduleUrl` (its import.meta.url) was started as the program (`tsx <file>`), not imported. */
export const isMain = (moduleUrl: string): boolean => !!process.argv[1] && fileURLToPath(moduleUrl) === path.resolve(process.argv[1]);
