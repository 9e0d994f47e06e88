/**
 * Espruino 2v29 compatibility checker: parses a script (the built firmware or
 * any snippet) with acorn and reports every construct outside the table in
 * ../shared/espruino-notes.md — syntax Espruino rejects, globals and methods it
 * lacks, and the shapes whose semantics differ silently (no hoisting, no
 * per-iteration loop binding, the `case N: "str"…` switch bug).
 *
 *   checkEspruino(code) → [{ rule, message, pos }]   (empty = clean)
 *   CLI: tsx scripts/build/espruino-check.ts firmware/*.js   (exit 1 on findings)
 */
import * as acorn from "acorn";
import { readFileSync } from "node:fs";
import { isMain, parseArgs } from "../repo";

export interface Finding {
  rule: string;
  message: string;
  /** Character offset into the checked code. */
  pos: number;
}

/** Every rule the checker can report, with a one-line description. */
export const RULES: Record<string, string> = {
  "syntax": "the code does not parse as JavaScript",
  "module-syntax": "import/export/import() — Espruino runs plain scripts",
  "default-params": "default parameter values",
  "rest-params": "rest parameters (...args)",
  "spread": "spread in calls, array or object literals",
  "destructuring": "destructuring in declarations, parameters, assignments or catch",
  "computed-key": "computed keys in object literals or class members",
  "optional-chaining": "optional chaining a?.b / f?.()",
  "exponent": "** and **=",
  "logical-assign": "??=, ||=, &&=",
  "async": "async functions/arrows, await, for await",
  "generator": "generators and yield",
  "tagged-template": "tagged template literals",
  "labelled-jump": "break/continue with a label",
  "extends-builtin": "class extends a built-in class (Error, TypeError, Array…)",
  "private-member": "private fields and methods #x",
  "bigint": "BigInt literals",
  "regex-named-group": "regular expression named groups (?<name>…) / \\k<name>",
  "regex-feature": "regular expression syntax Espruino's RegExp lacks (?, {n}, (?:…), | inside a group, a quantified group, \\b, back-references, flags other than g and i)",
  "missing-global": "a global Espruino does not have (Map, Set, Symbol…)",
  "missing-method": "a built-in method Espruino does not have (Array.from, .finally…)",
  "prototype-access": "built-in methods read through X.prototype (undefined on Espruino)",
  "require": "require() of something that is not an Espruino built-in module",
  "no-hoist": "use of a function before its declaration in the same body (Espruino does not hoist)",
  "loop-closure": "a closure over a for (let/const …) loop variable (no per-iteration binding)",
  "switch-string-case": "a case whose first statement starts with a string literal (2v29 switch bug)",
  "non-ascii": "a non-ASCII character in the script text (Storage holds bytes: UTF-8 would change string contents)",
};

/** Globals missing on Espruino 2v29 (flagged only when referenced as free globals). */
export const MISSING_GLOBALS = new Set([
  "Map", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Symbol", "Reflect", "Proxy",
  "TextEncoder", "TextDecoder", "Buffer", "setImmediate", "clearImmediate", "queueMicrotask",
  "structuredClone", "globalThis", "BigInt", "BigInt64Array", "BigUint64Array", "Intl",
  "SharedArrayBuffer", "Atomics", "AggregateError", "URL", "URLSearchParams", "AbortController",
]);

/** `Global.method` pairs missing on Espruino 2v29. */
export const MISSING_METHODS: Record<string, string[]> = {
  Array: ["from", "of"],
  Number: ["isInteger", "isNaN"],
  Math: ["trunc"],
  Object: ["freeze"],
  Date: ["UTC"],
  Promise: ["race", "allSettled", "any"],
  process: ["exit"],
};

/** Built-in constructors whose methods are invisible through `.prototype` on Espruino. */
export const BUILTIN_CLASSES = new Set([
  "Object", "Function", "Array", "String", "Number", "Boolean", "Promise", "Date", "RegExp",
  "Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError", "InternalError",
  "ArrayBuffer", "DataView", "Uint8Array", "Int8Array", "Uint8ClampedArray", "Uint16Array", "Int16Array",
  "Uint32Array", "Int32Array", "Float32Array", "Float64Array",
]);

/** Built-in classes Espruino cannot extend (super() into a native constructor fails). */
const ERROR_CLASSES = new Set([
  "Error", "TypeError", "RangeError", "SyntaxError", "ReferenceError", "EvalError", "URIError", "InternalError", "AggregateError",
]);
const NATIVE_CLASSES = new Set([...BUILTIN_CLASSES].filter((n) => n !== "Object"));

/** Modules built into Espruino's STM32/Linux firmware (require() works without upload). */
export const BUILTIN_MODULES = new Set([
  "Storage", "Flash", "net", "dgram", "http", "tls", "crypto", "Wifi", "NetworkJS", "heatshrink", "neopixel", "fs",
  "CC3000", "WIZnet",
]);

// ---------------------------------------------------------------- AST plumbing

type Node = acorn.Node & Record<string, any>;

const FUNCTION_TYPES = new Set(["FunctionDeclaration", "FunctionExpression", "ArrowFunctionExpression"]);
const isFunction = (n: Node | null | undefined): boolean => !!n && FUNCTION_TYPES.has(n.type);

/** The child nodes of `node` as [child, key] pairs, in source order. */
function children(node: Node): Array<[Node, string]> {
  const out: Array<[Node, string]> = [];
  for (const key of Object.keys(node)) {
    if (key === "type" || key === "start" || key === "end" || key === "loc" || key === "range") continue;
    const v = (node as any)[key];
    if (Array.isArray(v)) {
      for (const c of v) if (c && typeof c.type === "string") out.push([c, key]);
    } else if (v && typeof v === "object" && typeof v.type === "string") {
      out.push([v, key]);
    }
  }
  out.sort((a, b) => a[0].start - b[0].start);
  return out;
}

/** Names bound by a binding pattern (declaration ids, params, catch param). */
function patternNames(p: Node | null | undefined, out: string[] = []): string[] {
  if (!p) return out;
  switch (p.type) {
    case "Identifier": out.push(p.name); break;
    case "ObjectPattern": for (const pr of p.properties) patternNames(pr.type === "RestElement" ? pr.argument : pr.value, out); break;
    case "ArrayPattern": for (const e of p.elements) patternNames(e, out); break;
    case "RestElement": patternNames(p.argument, out); break;
    case "AssignmentPattern": patternNames(p.left, out); break;
  }
  return out;
}

/** Is this Identifier, seen as child `key` of `parent`, a variable reference (not a name or a binding)? */
function isReference(parent: Node | null, key: string): boolean {
  if (!parent) return true;
  switch (parent.type) {
    case "MemberExpression": return key !== "property" || parent.computed;
    case "Property": case "MethodDefinition": case "PropertyDefinition":
      return key !== "key" || parent.computed;
    case "LabeledStatement": case "BreakStatement": case "ContinueStatement": return false;
    case "MetaProperty": return false;
    case "ImportSpecifier": case "ImportDefaultSpecifier": case "ImportNamespaceSpecifier":
    case "ExportSpecifier": case "ExportAllDeclaration": return false;
  }
  return true;
}

/** Leftmost primary of an expression: the node whose first token starts the expression. */
function leftmost(e: Node): Node {
  for (;;) {
    switch (e.type) {
      case "BinaryExpression": case "LogicalExpression": case "AssignmentExpression": e = e.left; break;
      case "ConditionalExpression": e = e.test; break;
      case "SequenceExpression": e = e.expressions[0]; break;
      case "CallExpression": e = e.callee; break;
      case "MemberExpression": e = e.object; break;
      case "TaggedTemplateExpression": e = e.tag; break;
      case "ChainExpression": e = e.expression; break;
      case "UpdateExpression": if (e.prefix) return e; e = e.argument; break;
      default: return e;
    }
  }
}

const memberName = (m: Node): string | undefined =>
  !m.computed && m.property.type === "Identifier" ? m.property.name
    : m.computed && m.property.type === "Literal" && typeof m.property.value === "string" ? m.property.value
      : undefined;

interface Binding { kind: "var" | "let" | "const" | "function" | "class" | "param" | "catch" | "import"; node: Node }

/** Parses as a script (what Espruino runs); falls back to module to report import/export precisely. */
function parse(code: string): { ast: Node } | { error: Finding } {
  const opts: acorn.Options = { ecmaVersion: "latest", preserveParens: true, allowHashBang: true, allowReturnOutsideFunction: true };
  try {
    return { ast: acorn.parse(code, { ...opts, sourceType: "script" }) as Node };
  } catch (e1: any) {
    try {
      return { ast: acorn.parse(code, { ...opts, sourceType: "module", allowReturnOutsideFunction: false }) as Node };
    } catch {
      return { error: { rule: "syntax", message: String(e1.message), pos: typeof e1.pos === "number" ? e1.pos : 0 } };
    }
  }
}

// ---------------------------------------------------------------- the checker

/**
 * What Espruino's RegExp (src/jswrap_regexp.c) cannot do that JavaScript can,
 * or undefined. It matches ".", [sets] with ranges and escapes, "^", "$",
 * "*" and "+" after a single character or set, capture groups, "|" at the top
 * level only, and the escapes \d \D \s \S \w \W \f \n \r \t \v \0 \xHH.
 * Anything else it reads differently: "?" and "{" are literal characters there,
 * "|" inside a group ends the whole alternative, a quantifier after ")" applies
 * to nothing, \b is a backspace.
 */
/**
 * Most top-level alternatives one regular expression may have. Espruino 2v29
 * locks the tested string once more for every alternative that fails, and a
 * lock count saturates at 15: from about twelve failed alternatives in a row
 * (fewer when the caller already holds locks on the string) the string can
 * never be freed, one block or more lost per test. Six leaves a wide margin.
 */
export const MAX_REGEX_ALTERNATIVES = 6;

export function regexProblem(pattern: string, flags: string): string | undefined {
  if (/[^gi]/.test(flags)) return `flag(s) "${flags}": Espruino knows only g and i`;
  let alternatives = 1;
  let depth = 0;
  let inSet = false;
  let afterGroup = false;
  // an earlier top-level alternative starts with ^
  let anchoredBefore = pattern[0] === "^";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "|" && !inSet && depth == 0 && pattern[i + 1] === "^") anchoredBefore = true;
    if (c === "\\") {
      const e = pattern[++i] ?? "";
      if (/[1-9kpPuc]/.test(e) || (!inSet && /[bB]/.test(e))) return `the escape \\${e} means something else or nothing there`;
      afterGroup = false;
      continue;
    }
    if (inSet) {
      if (c === "]") inSet = false;
      continue;
    }
    if (c === "[") inSet = true;
    else if (c === "(") {
      if (pattern[i + 1] === "?") return "(?…) groups and look-arounds are not supported";
      depth++;
    } else if (c === ")") {
      depth--;
      afterGroup = true;
      continue;
    } else if (c === "|" && depth > 0) return "| inside a group (Espruino alternates only at the top level)";
    else if (c === "|" && anchoredBefore && pattern[i + 1] !== "^" && depth == 0)
      return "an alternative without ^ after one with ^ (past the string's start Espruino 2v29 gives up at the ^ one and never tries those after it): put the unanchored alternatives first";
    else if (c === "|" && ++alternatives > MAX_REGEX_ALTERNATIVES)
      return `more than ${MAX_REGEX_ALTERNATIVES} alternatives (Espruino 2v29 leaks the tested string when about 12 fail in a row): split it into several regexes`;
    else if (c === "?") return "the ? quantifier (Espruino matches a literal ?)";
    else if (c === "{") return "{n,m} quantifiers (Espruino matches a literal {)";
    else if ((c === "*" || c === "+") && afterGroup) return "a quantifier after a group";
    afterGroup = false;
  }
  return undefined;
}

export function checkEspruino(code: string): Finding[] {
  const parsed = parse(code);
  if ("error" in parsed) return [parsed.error];
  const ast = parsed.ast;
  const findings: Finding[] = [];
  const seen = new Set<string>();
  const report = (rule: string, node: { start: number }, message: string) => {
    const k = rule + "@" + node.start;
    if (seen.has(k)) return;
    seen.add(k);
    findings.push({ rule, message, pos: node.start });
  };

  // ---- pass 1: scopes and their bindings
  const scopes = new Map<Node, Map<string, Binding>>();
  const scopeOf = (n: Node) => {
    let s = scopes.get(n);
    if (!s) scopes.set(n, (s = new Map()));
    return s;
  };
  const bind = (scope: Node, names: string[], b: Binding) => {
    const s = scopeOf(scope);
    for (const n of names) if (!s.has(n) || b.kind === "function") s.set(n, b);
  };
  const declare = (node: Node, fnScope: Node, blockScope: Node): void => {
    switch (node.type) {
      case "VariableDeclaration":
        for (const d of node.declarations) {
          bind(node.kind === "var" ? fnScope : blockScope, patternNames(d.id), { kind: node.kind, node: d });
        }
        break;
      case "FunctionDeclaration":
        if (node.id) {
          bind(blockScope, [node.id.name], { kind: "function", node });
          if (blockScope !== fnScope) bind(fnScope, [node.id.name], { kind: "function", node });
        }
        break;
      case "ClassDeclaration":
        if (node.id) bind(blockScope, [node.id.name], { kind: "class", node });
        break;
      case "ImportDeclaration":
        for (const s of node.specifiers) bind(fnScope, [s.local.name], { kind: "import", node: s });
        break;
    }
    if (isFunction(node)) {
      if (node.type === "FunctionExpression" && node.id) bind(node, [node.id.name], { kind: "function", node });
      for (const p of node.params) bind(node, patternNames(p), { kind: "param", node: p });
      scopeOf(node);
      const body = node.body;
      if (body.type === "BlockStatement") for (const st of body.body) declare(st, node, node);
      else declare(body, node, node);
      return;
    }
    if ((node.type === "ClassExpression" || node.type === "ClassDeclaration")) {
      if (node.type === "ClassExpression" && node.id) bind(node, [node.id.name], { kind: "class", node });
      scopeOf(node);
      if (node.superClass) declare(node.superClass, fnScope, blockScope);
      declare(node.body, fnScope, node);
      return;
    }
    if (node.type === "CatchClause") {
      if (node.param) bind(node, patternNames(node.param), { kind: "catch", node: node.param });
      declare(node.body, fnScope, node);
      return;
    }
    let inner = blockScope;
    if (node.type === "BlockStatement" || node.type === "StaticBlock" || node.type === "SwitchStatement" ||
        node.type === "ForStatement" || node.type === "ForInStatement" || node.type === "ForOfStatement") {
      inner = node;
      scopeOf(node);
    }
    for (const [c] of children(node)) declare(c, fnScope, inner);
  };
  scopeOf(ast);
  for (const st of ast.body) declare(st, ast, ast);

  // ---- pass 2: rules, with a scope chain for resolving references
  const chain: Node[] = [];
  const resolve = (name: string): { scope: Node; binding: Binding; index: number } | null => {
    for (let i = chain.length - 1; i >= 0; i--) {
      const b = scopes.get(chain[i])?.get(name);
      if (b) return { scope: chain[i], binding: b, index: i };
    }
    return null;
  };
  const isFreeGlobal = (n: Node | null | undefined, names?: Set<string>): boolean =>
    !!n && n.type === "Identifier" && (!names || names.has(n.name)) && !resolve(n.name);
  /** The innermost node on the chain that runs its code later than the surrounding body (functions, class fields). */
  const deferredBoundary = (from: number): number => {
    for (let i = chain.length - 1; i > from; i--) if (isFunction(chain[i]) || chain[i].type === "PropertyDefinition") return i;
    return -1;
  };
  const isLoopScope = (n: Node): boolean => {
    if (n.type === "ForStatement") return !!n.init && n.init.type === "VariableDeclaration" && n.init.kind !== "var";
    if (n.type === "ForInStatement" || n.type === "ForOfStatement") return n.left.type === "VariableDeclaration" && n.left.kind !== "var";
    return false;
  };

  const onReference = (id: Node, parent: Node | null) => {
    const r = resolve(id.name);
    if (!r) {
      if (MISSING_GLOBALS.has(id.name) && !(parent && parent.type === "UnaryExpression" && parent.operator === "typeof")) {
        report("missing-global", id, `${id.name} does not exist on Espruino 2v29`);
      }
      return;
    }
    // Closure over a let/const loop variable.
    if (isLoopScope(r.scope) && deferredBoundary(r.index) >= 0) {
      report("loop-closure", id, `closure over loop variable '${id.name}': Espruino has no per-iteration binding, every closure sees the last value`);
    }
    // Use before a function declaration in the same body.
    if (r.binding.kind === "function" && r.binding.node.type === "FunctionDeclaration" && id.start < r.binding.node.start) {
      const decl = r.binding.node;
      const ownerBody = isFunction(r.scope) ? r.scope.body.body : r.scope.type === "Program" ? r.scope.body : null;
      if (ownerBody && ownerBody.includes(decl) && deferredBoundary(r.index) < 0) {
        const call = parent && parent.type === "CallExpression" && parent.callee === id;
        report("no-hoist", id, `${call ? "call of" : "use of"} '${id.name}' before its declaration: Espruino does not hoist functions`);
      }
    }
  };

  const checkNode = (node: Node, parent: Node | null, key: string) => {
    switch (node.type) {
      case "ImportDeclaration": case "ExportNamedDeclaration": case "ExportDefaultDeclaration":
      case "ExportAllDeclaration": case "ImportExpression":
        report("module-syntax", node, `${node.type}: Espruino runs plain scripts, not modules`);
        break;
      case "MetaProperty":
        if (node.meta.name === "import") report("module-syntax", node, "import.meta is module syntax");
        break;
      case "AssignmentPattern":
        if (parent && isFunction(parent) && key === "params") report("default-params", node, "default parameter value: SyntaxError on Espruino");
        break;
      case "RestElement":
        if (parent && isFunction(parent) && key === "params") report("rest-params", node, "rest parameter: SyntaxError on Espruino");
        break;
      case "SpreadElement":
        report("spread", node, "spread syntax: SyntaxError on Espruino");
        break;
      case "ObjectPattern": case "ArrayPattern":
        if (!parent || (parent.type !== "ObjectPattern" && parent.type !== "ArrayPattern" && parent.type !== "Property")) {
          report("destructuring", node, "destructuring: not supported by Espruino");
        }
        break;
      case "Property":
        if (node.computed && parent && parent.type === "ObjectExpression") report("computed-key", node.key, "computed property key {[k]: v}: SyntaxError on Espruino");
        break;
      case "MethodDefinition": case "PropertyDefinition":
        if (node.computed) report("computed-key", node.key, "computed class member key: SyntaxError on Espruino");
        break;
      case "ChainExpression":
        report("optional-chaining", node, "optional chaining ?. : SyntaxError on Espruino");
        break;
      case "BinaryExpression":
        if (node.operator === "**") report("exponent", node, "** operator: SyntaxError on Espruino (use Math.pow)");
        break;
      case "AssignmentExpression":
        if (node.operator === "**=") report("exponent", node, "**= operator: SyntaxError on Espruino");
        if (node.operator === "??=" || node.operator === "||=" || node.operator === "&&=") {
          report("logical-assign", node, `${node.operator} operator: SyntaxError on Espruino`);
        }
        break;
      case "AwaitExpression":
        report("async", node, "await: not supported by Espruino");
        break;
      case "ForOfStatement":
        if (node.await) report("async", node, "for await: not supported by Espruino");
        break;
      case "YieldExpression":
        report("generator", node, "yield: generators are not supported by Espruino");
        break;
      case "TaggedTemplateExpression":
        report("tagged-template", node, "tagged template literal: not supported by Espruino");
        break;
      case "BreakStatement": case "ContinueStatement":
        if (node.label) report("labelled-jump", node, `${node.type === "BreakStatement" ? "break" : "continue"} ${node.label.name}: labelled jumps fail on Espruino`);
        break;
      case "ClassDeclaration": case "ClassExpression":
        if (isFreeGlobal(node.superClass, NATIVE_CLASSES) || isFreeGlobal(node.superClass, ERROR_CLASSES)) {
          report("extends-builtin", node.superClass, `class extends ${node.superClass.name}: Espruino cannot call a built-in constructor through super()`);
        }
        break;
      case "PrivateIdentifier":
        report("private-member", node, `#${node.name}: private members are not supported by Espruino`);
        break;
      case "Literal":
        if (node.bigint != null) report("bigint", node, `BigInt literal ${node.raw}: not supported by Espruino`);
        if (node.regex && /\(\?<(?![=!])|\\k</.test(node.regex.pattern)) {
          report("regex-named-group", node, "regex named group: Espruino's RegExp does not support it");
        } else if (node.regex) {
          const why = regexProblem(node.regex.pattern, node.regex.flags);
          if (why) report("regex-feature", node, `/${node.regex.pattern}/${node.regex.flags}: ${why}`);
        }
        break;
      case "MemberExpression": {
        const prop = memberName(node);
        if (prop !== undefined && node.object.type === "Identifier" && MISSING_METHODS[node.object.name]?.includes(prop) &&
            isFreeGlobal(node.object)) {
          report("missing-method", node, `${node.object.name}.${prop} does not exist on Espruino 2v29`);
        }
        if (prop === "finally" && parent && parent.type === "CallExpression" && parent.callee === node) {
          report("missing-method", node.property, ".finally() does not exist on Espruino 2v29 (Promise.prototype.finally)");
        }
        if (prop === "prototype" && isFreeGlobal(node.object, BUILTIN_CLASSES)) {
          report("prototype-access", node, `${node.object.name}.prototype: built-in methods read as undefined through .prototype on Espruino`);
        }
        break;
      }
      case "CallExpression":
        if (isFreeGlobal(node.callee) && node.callee.name === "require") {
          const a = node.arguments[0];
          const name = a && a.type === "Literal" && typeof a.value === "string" ? a.value
            : a && a.type === "TemplateLiteral" && a.expressions.length === 0 ? a.quasis[0].value.cooked : undefined;
          if (node.arguments.length !== 1 || name === undefined) report("require", node, "require() with a computed module name");
          else if (!BUILTIN_MODULES.has(name)) report("require", node, `require("${name}"): not an Espruino built-in module`);
        }
        break;
      case "SwitchCase": {
        const first = node.consequent[0];
        if (first && first.type === "ExpressionStatement") {
          const lm = leftmost(first.expression);
          if (lm.type === "Literal" && typeof lm.value === "string") {
            report("switch-string-case", first, "statement after case starts with a string literal: Espruino 2v29 loses its value (switch bug)");
          }
        }
        break;
      }
    }
    if (isFunction(node)) {
      if (node.async) report("async", node, "async function: not supported by Espruino");
      if (node.generator) report("generator", node, "generator function: not supported by Espruino");
    }
    if (node.type === "Identifier" && isReference(parent, key)) onReference(node, parent);
  };

  /** Binding positions: only default values and computed keys inside are references. */
  const visitBinding = (p: Node | null, parent: Node, key: string) => {
    if (!p) return;
    checkNode(p, parent, key);
    switch (p.type) {
      case "Identifier": return; // a declaration, not a reference
      case "ObjectPattern":
        for (const pr of p.properties) {
          if (pr.type === "RestElement") { visitBinding(pr, p, "properties"); continue; }
          checkNode(pr, p, "properties");
          if (pr.computed) visit(pr.key, pr, "key");
          visitBinding(pr.value, pr, "value");
        }
        return;
      case "ArrayPattern": for (const e of p.elements) visitBinding(e, p, "elements"); return;
      case "RestElement": visitBinding(p.argument, p, "argument"); return;
      case "AssignmentPattern": visitBinding(p.left, p, "left"); visit(p.right, p, "right"); return;
      default: visit(p, parent, key); // MemberExpression targets in assignment patterns
    }
  };

  const visit = (node: Node, parent: Node | null, key: string): void => {
    const opensScope = scopes.has(node) && node !== ast;
    if (opensScope) chain.push(node);
    if (node.type === "PropertyDefinition" && !node.static) chain.push(node); // field initialisers run later
    try {
      if (isFunction(node)) {
        checkNode(node, parent, key);
        for (const p of node.params) visitBinding(p, node, "params");
        if (node.body.type === "BlockStatement") for (const st of node.body.body) visit(st, node.body, "body");
        else visit(node.body, node, "body");
        return;
      }
      if (node.type === "VariableDeclarator") {
        checkNode(node, parent, key);
        visitBinding(node.id, node, "id");
        if (node.init) visit(node.init, node, "init");
        return;
      }
      if (node.type === "CatchClause") {
        checkNode(node, parent, key);
        if (node.param) {
          if (node.param.type !== "Identifier") report("destructuring", node.param, "destructuring catch parameter: not supported by Espruino");
          visitBinding(node.param, node, "param");
        }
        visit(node.body, node, "body");
        return;
      }
      if ((node.type === "ClassDeclaration" || node.type === "ClassExpression")) {
        checkNode(node, parent, key);
        if (node.superClass) visit(node.superClass, node, "superClass");
        visit(node.body, node, "body");
        return;
      }
      checkNode(node, parent, key);
      for (const [c, k] of children(node)) {
        if (c.type === "Identifier" && !isReference(node, k)) continue;
        visit(c, node, k);
      }
    } finally {
      if (node.type === "PropertyDefinition" && !node.static) chain.pop();
      if (opensScope) chain.pop();
    }
  };

  chain.push(ast);
  for (const st of ast.body) visit(st, ast, "body");

  // The script is stored and lexed as bytes: only ASCII text means the same thing on the board.
  let nonAscii = 0;
  for (let i = 0; i < code.length && nonAscii < 5; i++) {
    const c = code.charCodeAt(i);
    if (c > 126 || (c < 32 && c !== 9 && c !== 10 && c !== 13)) {
      nonAscii++;
      report("non-ascii", { start: i }, `character U+${c.toString(16).padStart(4, "0")} in the script text: write it as an escape`);
    }
  }
  findings.sort((a, b) => a.pos - b.pos);
  return findings;
}

/** "line:col rule: message" for a finding. */
export function formatFinding(code: string, f: Finding): string {
  const before = code.slice(0, f.pos);
  const line = before.split("\n").length;
  const col = f.pos - before.lastIndexOf("\n");
  const excerpt = code.slice(Math.max(0, f.pos - 20), f.pos + 40).replace(/\s+/g, " ");
  return `${line}:${col} ${f.rule}: ${f.message}  …${excerpt}…`;
}

if (isMain(import.meta.url)) {
  let bad = 0;
  for (const file of parseArgs({ allowPositionals: true }).positionals) {
    const code = readFileSync(file, "utf8");
    const fs = checkEspruino(code);
    bad += fs.length;
    console.log(`${file}: ${fs.length ? fs.length + " finding(s)" : "ok"}`);
    for (const f of fs) console.log("  " + formatFinding(code, f));
  }
  process.exit(bad ? 1 : 0);
}
