/** The few Espruino globals the firmware touches, typed for the compiler. */
declare function setTimeout(fn: () => void, ms: number): number;
declare function clearTimeout(id: unknown): void;
declare function setInterval(fn: () => void, ms: number): number;
declare function clearInterval(id: unknown): void;
/** Seconds since power-on, with sub-millisecond resolution. */
declare function getTime(): number;
/** The chip's unique serial number as text. */
declare function getSerial(): string;
declare function digitalWrite(pin: string, value: boolean | number): void;
declare function digitalRead(pin: string): number;
declare function pinMode(pin: string, mode: string): void;
declare const console: { log(...args: unknown[]): void };
/** Espruino's root scope: global.Serial2 is the UART object. */
declare const global: Record<string, any>;
declare const E: { on(event: "init" | "kill", fn: () => void): void };
interface EspruinoStorage {
  readJSON(name: string, noExceptions: boolean): any;
}
declare function require(module: "Storage"): EspruinoStorage;
