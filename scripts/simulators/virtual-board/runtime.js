/*
 * The Espruino side of the virtual board: evaluated INSIDE the node:vm context
 * (plain ES5-ish JavaScript, no build step), it installs Espruino's globals on
 * the context's own intrinsics and removes what Espruino lacks. It talks to the
 * host only through `host` (functions taking and returning primitives, never
 * throwing: they return an error text that is thrown here as a context Error),
 * and returns `internals`, the functions the host calls to deliver events.
 */
(function (host, cfg) {
  "use strict";
  var G = Function("return this")();
  var SymbolRef = G.Symbol;
  var EV = SymbolRef("events");
  var NAME = SymbolRef("name");
  var hasOwn = Object.prototype.hasOwnProperty;
  var slice = Array.prototype.slice;
  var defProp = Object.defineProperty;
  var jsonParse = JSON.parse;
  var fromCharCode = String.fromCharCode;

  function def(obj, name, value) {
    defProp(obj, name, { value: value, writable: true, configurable: true, enumerable: false });
  }
  function fail(msg) { if (msg) throw new Error(msg); }

  // ------------------------------------------------------------ events: every object has on/emit on Espruino
  function evs(o, create) {
    var e = hasOwn.call(o, EV) ? o[EV] : undefined;
    if (!e && create) { defProp(o, EV, { value: {}, configurable: true }); e = o[EV]; }
    return e;
  }
  function on(ev, fn) {
    if (typeof fn !== "function") throw new Error("Expecting a function");
    var e = evs(this, true);
    (e[ev] || (e[ev] = [])).push(fn);
    return this;
  }
  def(Object.prototype, "on", on);
  def(Object.prototype, "addListener", on);
  def(Object.prototype, "prependListener", function (ev, fn) {
    var e = evs(this, true);
    (e[ev] || (e[ev] = [])).unshift(fn);
    return this;
  });
  def(Object.prototype, "emit", function (ev) {
    var e = evs(this, false);
    var l = e && e[ev];
    if (!l || !l.length) return false;
    var args = slice.call(arguments, 1);
    l = l.slice();
    for (var i = 0; i < l.length; i++) l[i].apply(this, args);
    return true;
  });
  def(Object.prototype, "removeListener", function (ev, fn) {
    var e = evs(this, false);
    var l = e && e[ev];
    if (!l) return this;
    var i = l.indexOf(fn);
    if (i >= 0) l.splice(i, 1);
    if (!l.length) delete e[ev];
    return this;
  });
  def(Object.prototype, "removeAllListeners", function (ev) {
    var e = evs(this, false);
    if (!e) return this;
    if (ev === undefined) { for (var k in e) delete e[k]; } else delete e[ev];
    return this;
  });
  function hasListeners(o, ev) {
    var e = evs(o, false);
    return !!(e && e[ev] && e[ev].length);
  }

  // ------------------------------------------------------------ bytes
  /** Espruino's "iterable" data (string, number, array, typed array, {data,count}) as a byte string. */
  function toBytes(d) {
    if (typeof d === "string") {
      var out = "";
      for (var i = 0; i < d.length; i++) out += fromCharCode(d.charCodeAt(i) & 255);
      return out;
    }
    if (typeof d === "number" || typeof d === "boolean") return fromCharCode((+d) & 255);
    if (d === undefined || d === null) return "";
    if (d instanceof ArrayBuffer) d = new Uint8Array(d);
    if (typeof d === "object" && d.data !== undefined && d.count !== undefined) {
      var s = "", one = toBytes(d.data);
      for (var c = 0; c < d.count; c++) s += one;
      return s;
    }
    if (typeof d === "object" && typeof d.length === "number") {
      var r = "";
      for (var j = 0; j < d.length; j++) r += toBytes(d[j]);
      return r;
    }
    return toBytes(String(d));
  }

  // ------------------------------------------------------------ formatting like Espruino's console
  function fmt(v, depth) {
    if (typeof v === "string") return depth ? JSON.stringify(v) : v;
    if (typeof v === "function") return "function " + (v.name || "") + "() {…}";
    if (v instanceof Pin) return v[NAME];
    if (v === null || typeof v !== "object") return String(v);
    if ((depth || 0) > 3) return "…";
    var d = (depth || 0) + 1;
    if (typeof v.length === "number" && (Array.isArray(v) || ArrayBuffer.isView(v))) {
      var items = [];
      for (var i = 0; i < v.length; i++) items.push(fmt(v[i], d));
      return (Array.isArray(v) ? "" : "new " + v.constructor.name + "(") + "[ " + items.join(", ") + " ]" + (Array.isArray(v) ? "" : ")");
    }
    if (v instanceof Error) return v.name + ": " + v.message;
    var keys = Object.keys(v), parts = [];
    for (var k = 0; k < keys.length; k++) parts.push(JSON.stringify(keys[k]) + ": " + fmt(v[keys[k]], d));
    return parts.length ? "{ " + parts.join(", ") + " }" : "{ }";
  }
  function fmtArgs(args) {
    var parts = [];
    for (var i = 0; i < args.length; i++) parts.push(fmt(args[i], 0));
    return parts.join(" ");
  }

  // ------------------------------------------------------------ pins
  var pins = {};
  var pinList = [];
  function Pin(v) {
    return pinOf(v);
  }
  function pinOf(v) {
    if (v instanceof Pin) return v;
    if (typeof v === "number" && pinList[v]) return pinList[v];
    if (typeof v === "string" && hasOwn.call(pins, v)) return pins[v];
    throw new Error("Invalid pin: " + fmt(v, 1));
  }
  function pinName(v) { return pinOf(v)[NAME]; }
  for (var pi = 0; pi < cfg.pins.length; pi++) {
    var p = Object.create(Pin.prototype);
    defProp(p, NAME, { value: cfg.pins[pi] });
    pins[cfg.pins[pi]] = p;
    pinList.push(p);
    G[cfg.pins[pi]] = p;
  }
  for (var alias in cfg.aliases) if (hasOwn.call(pins, cfg.aliases[alias])) G[alias] = pins[cfg.aliases[alias]];
  def(Pin.prototype, "toString", function () { return this[NAME]; });
  def(Pin.prototype, "valueOf", function () { return pinList.indexOf(this); });
  def(Pin.prototype, "read", function () { return !!host.pinRead(this[NAME]); });
  def(Pin.prototype, "write", function (v) { host.pinWrite(this[NAME], v ? 1 : 0); });
  def(Pin.prototype, "set", function () { host.pinWrite(this[NAME], 1); });
  def(Pin.prototype, "reset", function () { host.pinWrite(this[NAME], 0); });
  def(Pin.prototype, "toggle", function () { var v = host.pinRead(this[NAME]) ? 0 : 1; host.pinWrite(this[NAME], v); return !!v; });
  def(Pin.prototype, "mode", function (m) { fail(host.pinMode(this[NAME], String(m))); });
  def(Pin.prototype, "getMode", function () { return host.getPinMode(this[NAME]); });
  def(Pin.prototype, "getInfo", function () { return { port: this[NAME][0], num: +this[NAME].slice(1) }; });
  G.Pin = Pin;

  G.digitalWrite = function (pin, value) {
    if (Array.isArray(pin)) {
      for (var i = pin.length - 1, v = +value; i >= 0; i--, v >>= 1) host.pinWrite(pinName(pin[i]), v & 1);
      return;
    }
    host.pinWrite(pinName(pin), value ? 1 : 0);
  };
  G.digitalRead = function (pin) {
    if (Array.isArray(pin)) {
      var v = 0;
      for (var i = 0; i < pin.length; i++) v = (v << 1) | host.pinRead(pinName(pin[i]));
      return v;
    }
    return host.pinRead(pinName(pin));
  };
  G.pinMode = function (pin, mode) {
    if (mode === undefined) return host.getPinMode(pinName(pin));
    fail(host.pinMode(pinName(pin), String(mode)));
  };
  G.getPinMode = function (pin) { return host.getPinMode(pinName(pin)); };
  G.digitalPulse = function (pin, value, time) {
    var times = typeof time === "number" ? [time] : slice.call(time || []);
    fail(host.pulse(pinName(pin), value ? 1 : 0, JSON.stringify(times)));
  };
  G.setWatch = function (fn, pin, opts) {
    if (typeof fn !== "function") throw new Error("Function or String not supplied!");
    var o = typeof opts === "object" && opts ? opts : { repeat: !!opts };
    return host.watchAdd(fn, pinName(pin), String(o.edge || "both"), !!o.repeat);
  };
  G.clearWatch = function (id) { fail(host.watchClear(arguments.length, id)); };
  G.analogRead = function (pin) { pinName(pin); return 0; };
  G.analogWrite = function (pin, value) { host.pinWrite(pinName(pin), value >= 0.5 ? 1 : 0); };

  // ------------------------------------------------------------ timers
  function timer(fn, ms, args, interval) {
    if (typeof fn === "string") { var code = fn; fn = function () { (0, G.eval)(code); }; }
    if (typeof fn !== "function") throw new Error("Function or String not supplied!");
    return host.timerAdd(fn, +ms || 0, interval, slice.call(args, 2));
  }
  G.setTimeout = function (fn, ms) { return timer(fn, ms, arguments, false); };
  G.setInterval = function (fn, ms) { return timer(fn, ms, arguments, true); };
  G.clearTimeout = function (id) { fail(host.timerClear(arguments.length, id, "Timeout")); };
  G.clearInterval = function (id) { fail(host.timerClear(arguments.length, id, "Interval")); };
  G.changeInterval = function (id, ms) { fail(host.timerChange(id, +ms || 0)); };
  G.getTime = function () { return host.now() / 1000; };
  G.setTime = function (t) { host.setTime(+t); };
  G.getSerial = function () { return host.serial(); };

  // ------------------------------------------------------------ serial ports
  var serials = {};
  var rxBuf = {};
  function Serial() {}
  def(Serial.prototype, "setup", function (baud, opts) {
    var o = {};
    if (opts && typeof opts === "object") {
      for (var k in opts) {
        var v = opts[k];
        o[k] = v instanceof Pin ? v[NAME] : v === undefined ? undefined : v;
      }
    }
    host.uartSetup(this[NAME], +baud || 9600, JSON.stringify(o));
  });
  def(Serial.prototype, "write", function () {
    var s = "";
    for (var i = 0; i < arguments.length; i++) s += toBytes(arguments[i]);
    host.uartWrite(this[NAME], s);
  });
  def(Serial.prototype, "print", function (s) { host.uartWrite(this[NAME], toBytes(String(s))); });
  def(Serial.prototype, "println", function (s) { host.uartWrite(this[NAME], toBytes(String(s)) + "\r\n"); });
  def(Serial.prototype, "available", function () { return (rxBuf[this[NAME]] || "").length; });
  def(Serial.prototype, "read", function (n) {
    var b = rxBuf[this[NAME]] || "";
    var k = n === undefined || n < 0 ? b.length : Math.min(n, b.length);
    rxBuf[this[NAME]] = b.slice(k);
    return b.slice(0, k);
  });
  def(Serial.prototype, "inject", function () {
    var s = "";
    for (var i = 0; i < arguments.length; i++) s += toBytes(arguments[i]);
    host.uartInject(this[NAME], s);
  });
  def(Serial.prototype, "setConsole", function () {});
  def(Serial.prototype, "toString", function () { return this[NAME]; });
  for (var si = 0; si < cfg.serials.length; si++) {
    var sp = new Serial();
    defProp(sp, NAME, { value: cfg.serials[si] });
    serials[cfg.serials[si]] = sp;
    G[cfg.serials[si]] = sp;
  }

  // ------------------------------------------------------------ console, print
  var con = {};
  con.log = con.info = con.warn = con.error = con.debug = function () { host.log(fmtArgs(arguments)); };
  G.console = con;
  G.print = function () { host.log(fmtArgs(arguments)); };

  // ------------------------------------------------------------ Storage
  function fileName(name) {
    var n = String(name);
    if (!n.length) throw new Error("Invalid filename");
    if (n.length > 28) throw new Error("File name too long (max 28 characters): " + n);
    return n;
  }
  var Storage = {
    read: function (name, offset, length) {
      var s = host.stRead(fileName(name));
      if (s === undefined) return undefined;
      var o = offset || 0;
      return length === undefined ? s.slice(o) : s.slice(o, o + length);
    },
    readJSON: function (name, noExceptions) {
      var s = host.stRead(fileName(name));
      if (s === undefined) return undefined;
      try { return jsonParse(s); } catch (e) { if (noExceptions) return undefined; throw e; }
    },
    readArrayBuffer: function (name) {
      var s = host.stRead(fileName(name));
      if (s === undefined) return undefined;
      var u = new Uint8Array(s.length);
      for (var i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
      return u.buffer;
    },
    write: function (name, data, offset, size) {
      var n = fileName(name);
      var bytes = toBytes(data);
      if (offset === undefined && size === undefined) return host.stWrite(n, bytes);
      var cur = host.stRead(n);
      if (size !== undefined || cur === undefined) {
        cur = "";
        for (var i = 0; i < (size || bytes.length); i++) cur += "\xff";
      }
      var o = offset || 0;
      return host.stWrite(n, cur.slice(0, o) + bytes + cur.slice(o + bytes.length));
    },
    writeJSON: function (name, obj) { return host.stWrite(fileName(name), JSON.stringify(obj)); },
    list: function (regex) {
      var names = jsonParse(host.stList());
      return regex ? names.filter(function (n) { return regex.test(n); }) : names;
    },
    erase: function (name) { host.stErase(fileName(name)); },
    eraseAll: function () { host.stEraseAll(); },
    getFree: function () { return host.stFree(); },
    compact: function () {},
    debug: function () {},
    getStats: function () { return jsonParse(host.stStats()); },
    open: function () { throw new Error("StorageFile is not supported by the virtual board"); },
  };
  G.require = function (name) {
    if (name === "Storage") return Storage;
    throw new Error("Module " + name + " not found");
  };

  // ------------------------------------------------------------ E, process, interpreter control
  var E = {
    hwRand: function () { return (Math.random() * 4294967296) | 0; },
    toString: function () {
      var s = "";
      for (var i = 0; i < arguments.length; i++) s += toBytes(arguments[i]);
      return s;
    },
    toUint8Array: function () {
      var s = E.toString.apply(E, arguments);
      var u = new Uint8Array(s.length);
      for (var i = 0; i < s.length; i++) u[i] = s.charCodeAt(i);
      return u;
    },
    toArrayBuffer: function (s) { return E.toUint8Array(s).buffer; },
    toJS: function (v) { return JSON.stringify(v); },
    getSizeOf: function (v) { return Math.ceil(JSON.stringify(v === undefined ? null : v).length / 12) + 1; },
    getErrorFlags: function () { return []; },
    kickWatchdog: function () {},
    enableWatchdog: function () {},
    setConsole: function () {},
    reboot: function () { host.control("load", ""); },
  };
  G.E = E;
  G.process = {
    version: cfg.version,
    env: { VERSION: cfg.version, BOARD: cfg.board, SERIAL: cfg.serial },
    memory: function () { return jsonParse(host.memory()); },
  };
  G.save = function () { host.control("save", ""); };
  G.load = function (file) { host.control("load", file === undefined ? "" : String(file)); };
  G.reset = function (clearFlash) { host.control("reset", clearFlash ? "1" : ""); };
  G.setDeepSleep = function () {};
  G.setSleepIndicator = function () {};
  G.setBusyIndicator = function () {};
  G.global = G;

  // base64, as Espruino has btoa/atob
  var B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  G.btoa = function (s) {
    s = toBytes(String(s));
    var out = "";
    for (var i = 0; i < s.length; i += 3) {
      var n = (s.charCodeAt(i) << 16) | ((s.charCodeAt(i + 1) || 0) << 8) | (s.charCodeAt(i + 2) || 0);
      out += B64[(n >> 18) & 63] + B64[(n >> 12) & 63] + (i + 1 < s.length ? B64[(n >> 6) & 63] : "=") + (i + 2 < s.length ? B64[n & 63] : "=");
    }
    return out;
  };
  G.atob = function (s) {
    s = String(s).replace(/[^A-Za-z0-9+/]/g, "");
    var out = "", bits = 0, acc = 0;
    for (var i = 0; i < s.length; i++) {
      acc = (acc << 6) | B64.indexOf(s[i]);
      bits += 6;
      if (bits >= 8) { bits -= 8; out += fromCharCode((acc >> bits) & 255); }
    }
    return out;
  };

  // ------------------------------------------------------------ what Espruino 2v29 does not have
  var missingGlobals = ["Map", "Set", "WeakMap", "WeakSet", "WeakRef", "FinalizationRegistry", "Symbol", "Reflect",
    "Proxy", "BigInt", "BigInt64Array", "BigUint64Array", "Intl", "SharedArrayBuffer", "Atomics", "AggregateError",
    "WebAssembly", "globalThis", "queueMicrotask", "structuredClone", "TextEncoder", "TextDecoder", "Buffer",
    "setImmediate", "clearImmediate", "Iterator"];
  for (var mi = 0; mi < missingGlobals.length; mi++) delete G[missingGlobals[mi]];
  delete Array.from;
  delete Array.of;
  delete Number.isInteger;
  delete Number.isNaN;
  delete Math.trunc;
  delete Object.freeze;
  delete Date.UTC;
  delete G.Promise.race;
  delete G.Promise.allSettled;
  delete G.Promise.any;
  delete G.Promise.prototype.finally;

  // ------------------------------------------------------------ what the host calls
  return {
    /** Bytes arrived on a UART: the "data" event, or the receive buffer when nobody listens. */
    rx: function (name, bytes) {
      var s = serials[name];
      if (hasListeners(s, "data")) s.emit("data", bytes);
      else {
        var b = (rxBuf[name] || "") + bytes;
        rxBuf[name] = b.length > 65536 ? b.slice(b.length - 65536) : b;
      }
    },
    emitE: function (ev) { E.emit(ev); },
    onInit: function () { if (typeof G.onInit === "function") G.onInit(); },
    format: function (v) { return fmt(v, 0); },
    watchEvent: function (fn, state, time, lastTime, pin) {
      fn({ state: !!state, time: time, lastTime: lastTime, pin: pins[pin] });
    },
  };
});
