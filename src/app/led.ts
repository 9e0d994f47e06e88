/** What a command payload asks of the LED. */
export const LED_OFF = 0;
export const LED_ON = 1;
export const LED_TOGGLE = 2;
export const LED_IGNORE = -1;

/**
 * on/off/toggle, 1/0, true/false, any case, surrounding white space ignored.
 * The payload is a byte string; anything else is LED_IGNORE.
 */
export function parseCommand(payload: string): number {
  const w = payload.trim().toLowerCase();
  return w == "on" || w == "1" || w == "true" ? LED_ON
    : w == "off" || w == "0" || w == "false" ? LED_OFF
    : w == "toggle" ? LED_TOGGLE
    : LED_IGNORE;
}

/** The LED's next level (true = lit) after a command. */
export function nextLevel(cmd: number, lit: boolean): boolean {
  return cmd == LED_TOGGLE ? !lit : cmd == LED_ON;
}
