/**
 * The Espruino contract (../shared/espruino-notes.md), enforced on the built
 * firmware: every firmware/*.js parses and holds nothing outside the notes'
 * table. The second half proves the checker itself: each rule fires on a small
 * bad snippet and stays quiet on the syntax the notes allow.
 */
import { describe, expect, it } from "vitest";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { minify } from "terser";
import { checkEspruino, formatFinding, RULES } from "../../scripts/build/espruino-check";
import { ROOT, terserOptions } from "../../scripts/build/bundle";

const rulesOf = (code: string) => checkEspruino(code).map((f) => f.rule);

describe("built firmware", () => {
  const dir = path.join(ROOT, "firmware");
  const files = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".js")).sort() : [];

  it("exists (npm test runs npm run build first)", () => {
    expect(files.length, "no firmware/*.js: run npm run build").toBeGreaterThan(0);
  });

  for (const file of files) {
    it(`${file} is inside what Espruino 2v29 accepts`, () => {
      const code = readFileSync(path.join(dir, file), "utf8");
      const report = checkEspruino(code).map((f) => formatFinding(code, f));
      expect(report).toEqual([]);
    });
  }
});

/** At least one bad snippet per rule; each must report (at least) that rule. */
const BAD: Record<string, string[]> = {
  "syntax": ["function ("],
  "module-syntax": ["export const a = 1;", "import x from 'y';", "import('y')"],
  "default-params": ["function f(a = 1) { return a }", "const f = (a, b = 2) => a + b"],
  "rest-params": ["function f(...args) { return args }", "const f = (...a) => a"],
  "spread": ["f(...a)", "const b = [...a]", "const o = { ...p }", "new C(...a)"],
  "destructuring": [
    "const { a } = o", "let [a, b] = c", "function f({ a }) { return a }", "const g = ([x]) => x",
    "[a, b] = [b, a]", "({ a } = o)", "try { f() } catch ({ message }) { g(message) }", "for (const [k, v] of e) f(k, v)",
    "function h({ a } = {}) { return a }",
  ],
  "computed-key": ["const o = { [k]: 1 }", "class A { [k]() {} }", "class B { [k] = 1 }", "class C { static [k]() {} }"],
  "optional-chaining": ["a?.b", "f?.()", "a?.[0]"],
  "exponent": ["x = a ** b", "x **= 2"],
  "logical-assign": ["a ??= 1", "a ||= 1", "a &&= 1"],
  "async": ["async function f() {}", "const f = async () => 1", "const o = { async m() {} }", "async function g() { await x }"],
  "generator": ["function* g() { yield 1 }", "const o = { *m() {} }"],
  "tagged-template": ["tag`x${1}`", "String.raw`a`"],
  "labelled-jump": ["outer: for (;;) { for (;;) { continue outer } }", "outer: for (;;) { break outer }"],
  "extends-builtin": ["class E extends Error { constructor(m) { super(m) } }", "class T extends TypeError {}", "class L extends Array {}"],
  "private-member": ["class A { #x = 1 }", "class A { #m() {} }", "class A { #x; has(o) { return #x in o } }"],
  "bigint": ["const n = 10n"],
  "regex-named-group": ["const r = /(?<year>\\d{4})/", "const r = /(?<a>x)\\k<a>/"],
  "regex-feature": [
    "/colou?r/.test(s)", "/(a|b)c/.test(s)", "/(?:x)y/.test(s)", "/x(?=y)/.test(s)", "/x(?!y)/.test(s)", "/a{2}/.test(s)",
    "/(ab)+/.test(s)", "/\\bword/.test(s)", "/(a)\\1/.test(s)", "/x/m.test(s)", "/x/u.test(s)", "/a*?b/.test(s)",
    // seven top-level alternatives: past the leak margin (the AT engine's 13-way URC regex leaked 2 blocks a ping)
    "/^A|^B|^C|^D|^E|^F|^G/.test(s)", "/^WIFI|^CLOSE|^CONNECT|^ALREADY|^ready|^busy |^RDY|^Call|^SMS|^NORMAL|^UNDER|^\\+PDP|^\\d, *C/.test(l)",
    // an unanchored alternative after an anchored one: on the interpreter /^RDY|DOWN$/ misses "NORMAL POWER DOWN"
    "/^RDY|DOWN$|DEACT$/.test(l)", "/DOWN$|^RDY|DEACT$/.test(l)",
  ],
  "missing-global": [
    "new Map()", "new Set()", "new WeakMap()", "new WeakSet()", "Symbol('x')", "Reflect.ownKeys(o)", "new Proxy(o, h)",
    "new TextEncoder()", "new TextDecoder()", "Buffer.from('x')", "setImmediate(f)", "queueMicrotask(f)",
    "structuredClone(o)", "globalThis.x = 1",
  ],
  "missing-method": [
    "Array.from(s)", "Array.of(1)", "Number.isInteger(1)", "Number.isNaN(n)", "Math.trunc(1.5)", "Object.freeze(o)",
    "Date.UTC(2020, 1)", "Promise.race(ps)", "Promise.allSettled(ps)", "Promise.any(ps)", "p.then(f).finally(g)",
    "Array['from'](s)", "process.exit(1)",
  ],
  "prototype-access": [
    "Array.prototype.slice.call(arguments)", "String.prototype.charCodeAt.call(s, 0)", "Function.prototype.call",
    "Promise.prototype.then", "Object.prototype.hasOwnProperty.call(o, k)", "Number.prototype.toFixed", "Uint8Array.prototype.set",
  ],
  "require": ["require('mqtt')", "require('ESP8266WiFi_0v25')", "require(name)"],
  "no-hoist": [
    "f(); function f() {}",
    "function outer() { g(); function g() {} }",
    "if (x) { h() } function h() {}",
    "const cb = k; function k() {}",
  ],
  "loop-closure": [
    "for (let i = 0; i < 3; i++) setTimeout(() => print(i), 10)",
    "for (const x of xs) fs.push(function () { return x })",
    "for (let i = 0; i < 3; i++) { a.on('x', () => { g(i) }) }",
    "for (const k in o) cbs.push(() => k)",
  ],
  "non-ascii": ['const s = "\u00ff";', 'print("caf\u00e9")', 'const t = "\u0001"'],
  "switch-string-case": [
    'switch (d) { case 2: "OK" === c ? a() : b() }',
    'switch (d) { case 2: "x".length; break }',
    'switch (d) { default: "a" + b }',
    'switch (d) { case 1: "OK" == c && a(), b() }',
  ],
};

describe("checker rules", () => {
  it("every rule has bad snippets here", () => {
    expect(Object.keys(BAD).sort()).toEqual(Object.keys(RULES).sort());
  });

  for (const [rule, snippets] of Object.entries(BAD)) {
    for (const code of snippets) {
      it(`${rule}: ${code}`, () => {
        expect(rulesOf(code)).toContain(rule);
      });
    }
  }

  it("reports a position inside the offending construct", () => {
    const code = "var ok = 1;\nvar m = new Map();";
    const [f] = checkEspruino(code);
    expect(f.rule).toBe("missing-global");
    expect(code.slice(f.pos, f.pos + 3)).toBe("Map");
  });
});

describe("checker stays quiet on what Espruino accepts", () => {
  const GOOD: Record<string, string> = {
    "classes, extends of own classes, super, getters, static, fields":
      "class A { constructor(x) { this.x = x } get y() { return this.x } set y(v) { this.x = v } static s() { return 1 } m() { return 2 } }\n" +
      "class B extends A { f = 5; constructor() { super(1) } m() { return super.m() + 1 } }\nnew B();",
    "arrows, let/const, shorthand, methods": "const a = 1; let b = 2; const f = (x) => x + a; const o = { a, b, f, m() { return this.a } }; o.m();",
    "template literals without tags": "const s = `a${1 + 2}b`; print(s);",
    "for…of over arrays and strings": "for (const x of [1, 2]) print(x); for (const c of 'ab') print(c);",
    "?? and optional catch binding": "const v = a ?? 1; try { f() } catch { g() } try { f() } catch (e) { g(e) }",
    "object getters and defineProperty": "const o = { get x() { return 1 } }; Object.defineProperty(o, 'y', { get() { return 2 } });",
    "Promise then/catch/all/resolve": "Promise.all([Promise.resolve(1)]).then((v) => v).catch((e) => e);",
    "typed arrays, DataView, String.fromCharCode, includes":
      "const u = new Uint8Array(4); u.set([1], 0); u.subarray(1); new DataView(u.buffer); String.fromCharCode(65); [1].includes(1); 'ab'.startsWith('a');",
    "switch whose cases start with an identifier or a parenthesis":
      "switch (d) { case 2: c === 'OK' ? a() : b(); break; case 3: ('OK' === c) ? a() : b(); break; case 4: { 'x' } default: f() }",
    "names of missing globals as properties and shadowed locals":
      "const o = { Map: 1, Set: 2 }; o.Map; o.Symbol; function g(Map) { return new Map() } { const Set = Array; new Set(); } typeof Symbol;",
    "our own classes' prototype": "function F() {} F.prototype.x = 1; class C {} C.prototype.y = 2;",
    "require of built-in modules": "const s = require('Storage'); require('net'); require('Wifi');",
    "functions used after their declaration, or from a later callback":
      "function f() { return 1 } f(); setTimeout(() => g(), 10); function g() { return f() } const o = { m() { return h() } }; function h() {}",
    "recursion and closures over a var loop or a per-call copy":
      "function fact(n) { return n ? n * fact(n - 1) : 1 } for (var i = 0; i < 3; i++) setTimeout(() => print(i)); " +
      "for (let j = 0; j < 3; j++) { const k = j; print(k) } for (const x of xs) print(x); xs.forEach((x) => setTimeout(() => print(x)));",
    "labels without jumps, plain break/continue": "a: { f() } for (;;) { if (x) break; continue }",
    "regexes Espruino's RegExp reads as JavaScript does": "/(\\d+)-x/.exec(s); /^ERROR|^\\+CM. ERROR|^SEND OK/.test(l); /^ *\\+IPD,([\\d.,]+):/.exec(b); /[?{|()\\b]\\?/g.test(s); /^\\d, *C/i.test(s); /^A|^B|^C|^D|^E|^[|]/.test(s); /DOWN$|DEACT$|^RDY/.test(l); /a|b|^c/.test(s);",
    "non-ASCII written as escapes": 'const s = "\\xff\\u00e9"; print(s);',
  };
  for (const [name, code] of Object.entries(GOOD)) {
    it(name, () => {
      expect(checkEspruino(code).map((f) => formatFinding(code, f))).toEqual([]);
    });
  }
});

describe("minifier output", () => {
  const src = "function f(d, c) { switch (d) { case 2: if (c === 'OK') a(); else b(); break; case 3: x() } } use(f);";

  it("terser with its default lhs_constants makes the 2v29 switch-bug shape, and the checker catches it", async () => {
    const out = await minify(src, { ...terserOptions, compress: { ...terserOptions.compress, lhs_constants: true } });
    expect(out.code).toMatch(/case 2:"OK"===/);
    expect(rulesOf(out.code!)).toContain("switch-string-case");
  });

  it("the build's terserOptions write non-ASCII characters as escapes", async () => {
    const out = await minify('print("\u00ff\u00e9" + String.fromCharCode(255));', terserOptions);
    expect(out.code).toMatch(/\\xff/);
    expect(rulesOf(out.code!)).toEqual([]);
  });

  it("the build's terserOptions keep the constant on the right", async () => {
    const out = await minify(src, terserOptions);
    expect(out.code).not.toMatch(/case 2:"OK"/);
    expect(rulesOf(out.code!)).toEqual([]);
  });
});
