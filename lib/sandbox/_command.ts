/** A command as the SDK takes it (a shell string or an argv), checked and put in exec form. */
import { InvalidInputError } from "../errors.ts";

export function toCommand(command: string | string[]): { argv: string[] } | { shell: string } {
  if (typeof command === "string") {
    if (command.trim() === "") throw new InvalidInputError("Cannot run an empty command", { hint: 'pass a command, e.g. "uname -a"' });
    return { shell: command };
  }
  if (command.length === 0 || command[0] === "") {
    throw new InvalidInputError("Cannot run an empty command", { hint: 'pass a command, e.g. ["uname", "-a"]' });
  }
  return { argv: command };
}
