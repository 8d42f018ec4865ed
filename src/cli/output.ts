/** One line (or block) of text on stdout. */
export const say = (text: string): void => void process.stdout.write(`${text}\n`);

/** `--json` output: one pretty-printed document on stdout. */
export const printJson = (value: unknown): void => say(JSON.stringify(value, null, 2));

/** Colour only for a terminal, and never when NO_COLOR is set. */
export const wantsColour = (): boolean => process.stdout.isTTY === true && !process.env.NO_COLOR;
