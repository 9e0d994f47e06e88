/** Kept for scripts/flash.ts until it moves (another branch rewrites it): the module is scripts/build/bundle.ts. */
export * from "./build/bundle";
