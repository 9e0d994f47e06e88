/** Kept for scripts/flash.ts until it moves (another branch rewrites it): the module is scripts/build/espruino-check.ts. */
export * from "./build/espruino-check";
