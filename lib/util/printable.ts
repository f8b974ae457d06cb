/**
 * Text that came from a guest (an agent's error message, console lines quoted in an error) on
 * its way to a person's terminal: a hostile guest must not be able to move the cursor, retitle
 * the window or bury the real error under megabytes. Control characters other than newline and
 * tab are dropped (escape sequences whole), and the text is cut to a readable length.
 */

// CSI and OSC sequences first (so their parameters go with them), then any other control byte.
const SEQUENCES = /\u001b\[[0-?]*[ -/]*[@-~]|\u001b\][^\u0007\u001b]*(?:\u0007|\u001b\\)?|\u009b[0-?]*[ -/]*[@-~]/g;
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** `text` without terminal control sequences, at most `maxChars` long (with a note of the cut). */
export function printable(text: string, maxChars = 4000): string {
  const clean = text.replace(SEQUENCES, "").replace(CONTROLS, "");
  if (clean.length <= maxChars) return clean;
  return `${clean.slice(0, maxChars)}... (${clean.length - maxChars} more characters)`;
}
