/** What a command payload asks of the LED. */
export const LED_OFF = 0;
export const LED_ON = 1;
export const LED_TOGGLE = 2;
export const LED_IGNORE = -1;

// Words and what each one means, position for position: off on toggle 0 1 false true.
const WORDS = "off on toggle 0 1 false true".split(" ");
const MEANS = "0120101";

/**
 * on/off/toggle, 1/0, true/false, any case, surrounding white space ignored.
 * The payload is a byte string; anything else is LED_IGNORE.
 */
export function parseCommand(payload: string): number {
  const word = WORDS.indexOf(payload.trim().toLowerCase());
  return word < 0 ? LED_IGNORE : +MEANS[word];
}

/** The LED's next level (true = lit) after a command. */
export function nextLevel(command: number, lit: boolean): boolean {
  return command == LED_TOGGLE ? !lit : command == LED_ON;
}
