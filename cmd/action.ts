/**
 * The glue between commander and a command's body: every action runs through `action()`, which
 * records which command is running and whether it speaks JSON, so the single error boundary in
 * `main.ts` can report a failure in the right shape.
 */
import { Output } from "./output.ts";

export interface Invocation {
  command: string;
  json: boolean;
}

export const invocation: Invocation = { command: "smolvm", json: process.argv.includes("--json") };

/**
 * Wraps a command body. Commander passes positional arguments first and the options object
 * second-to-last; the body receives them unchanged plus an `Output` bound to this command.
 */
export function action<Args extends unknown[]>(
  command: string,
  body: (out: Output, ...args: Args) => Promise<void> | void,
): (...args: Args) => Promise<void> {
  return async (...args: Args) => {
    const options = args.find(
      (arg, i) => i === args.length - 2 && typeof arg === "object" && arg !== null && !Array.isArray(arg),
    ) as { json?: boolean } | undefined;
    invocation.command = command;
    invocation.json = options?.json === true;
    await body(new Output(command, invocation.json), ...args);
  };
}
