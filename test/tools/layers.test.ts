/**
 * The layer rule of src/ (docs/architecture.md): a file imports only from its
 * own layer or from layers below it, and src/board/ imports nothing outside
 * itself. Checked on the real import graph, and the checker itself is shown
 * to catch a violation.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");
const SRC = join(ROOT, "src");

/** Bottom first. A module's layer is the first entry whose prefix matches its path under src/. */
export const LAYERS: { layer: string; prefix: string }[] = [
  { layer: "transport", prefix: "transport.ts" },
  { layer: "codec", prefix: "codec/" },
  { layer: "at", prefix: "at/" },
  { layer: "session", prefix: "session/" },
  { layer: "modem", prefix: "modem/" },
  { layer: "app", prefix: "app/" },
];
/** Depends on nothing: a board's pin map is plain data. */
const ISOLATED = "board/";
/** Build-time modules (scripts/build/build.ts): only the app, at the top, may use them. */
const VIRTUAL = /^virtual:/;

function rankOf(file: string): number {
  return LAYERS.findIndex((entry) => file.startsWith(entry.prefix));
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : name.endsWith(".ts") ? [path] : [];
  });
}

/** Import edges of one file, as paths relative to src/ (".ts" added) or the bare specifier. */
function importsOf(path: string, text: string): string[] {
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^;]*?\bfrom\s*"([^"]+)"|import\("([^"]+)"\)/g)].map(
    (match) => match[1] ?? match[2],
  );
  return specifiers.map((specifier) => {
    if (!specifier.startsWith(".")) return specifier;
    const target = resolve(dirname(path), specifier);
    const file = [`${target}.ts`, `${target}.d.ts`, join(target, "index.ts"), target].find((candidate) => existsSync(candidate) && statSync(candidate).isFile());
    return relative(SRC, file ?? target);
  });
}

export type Graph = Record<string, string[]>;

export function srcGraph(): Graph {
  const graph: Graph = {};
  for (const path of sourceFiles(SRC)) graph[relative(SRC, path)] = importsOf(path, readFileSync(path, "utf8"));
  return graph;
}

/** Every edge that breaks the rule, as "from -> to: why". */
export function violations(graph: Graph): string[] {
  const found: string[] = [];
  for (const [from, targets] of Object.entries(graph)) {
    for (const to of targets) {
      if (from.startsWith(ISOLATED)) {
        if (!to.startsWith(ISOLATED)) found.push(`${from} -> ${to}: src/board/ depends on nothing`);
        continue;
      }
      if (VIRTUAL.test(to)) {
        if (rankOf(from) !== LAYERS.length - 1) found.push(`${from} -> ${to}: only the app uses the build's virtual modules`);
        continue;
      }
      if (to.startsWith(ISOLATED)) continue;
      const fromRank = rankOf(from);
      const toRank = rankOf(to);
      if (fromRank < 0) found.push(`${from}: in no layer`);
      else if (toRank < 0) found.push(`${from} -> ${to}: not a module of src/ (the firmware has no dependencies)`);
      else if (toRank > fromRank) found.push(`${from} -> ${to}: ${LAYERS[fromRank].layer} imports from ${LAYERS[toRank].layer}, a layer above it`);
    }
  }
  return found;
}

describe("layers of src/", () => {
  const graph = srcGraph();

  it("reads the import graph (every layer has files, edges resolve to files)", () => {
    for (const { prefix } of LAYERS) expect(Object.keys(graph).some((file) => file.startsWith(prefix)), prefix).toBe(true);
    const files = new Set(Object.keys(graph));
    for (const targets of Object.values(graph))
      for (const to of targets) if (!VIRTUAL.test(to)) expect(files.has(to), to).toBe(true);
    expect(graph["session/client.ts"]).toContain("transport.ts");
    expect(graph["codec/index.ts"]).toContain("transport.ts");
  });

  it("no file imports from a layer above it; src/board/ imports nothing; the contract imports nothing", () => {
    expect(violations(graph)).toEqual([]);
    expect(graph["transport.ts"]).toEqual([]);
  });

  it("the rule catches an upward import, a board import and a virtual module below the app", () => {
    const bad: Graph = {
      "codec/index.ts": ["session/client.ts"],
      "at/engine.ts": ["transport.ts", "modem/esp8266.ts"],
      "board/board.ts": ["transport.ts"],
      "modem/sim800.ts": ["virtual:board"],
      "session/client.ts": ["codec/index.ts", "transport.ts"],
    };
    expect(violations(bad)).toEqual([
      "codec/index.ts -> session/client.ts: codec imports from session, a layer above it",
      "at/engine.ts -> modem/esp8266.ts: at imports from modem, a layer above it",
      "board/board.ts -> transport.ts: src/board/ depends on nothing",
      "modem/sim800.ts -> virtual:board: only the app uses the build's virtual modules",
    ]);
  });
});
