/**
 * Turns a zod failure into one InvalidInputError that names the field, what was given and what is
 * allowed, so a bad flag, config file or state row reads the same everywhere:
 *
 *   Invalid sandbox config: memoryMiB: 12 is not allowed (an integer from 128 to 1048576 MiB)
 */
import type { z } from "./zod.ts";
import { InvalidInputError } from "./errors.ts";

export function parseOrThrow<S extends z.ZodMiniType>(
  schema: S,
  input: unknown,
  what: string,
  hint?: string,
): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => describeIssue(issue, input));
  return throwInvalid(what, problems, hint);
}

function throwInvalid(what: string, problems: string[], hint?: string): never {
  throw new InvalidInputError(`Invalid ${what}: ${problems.join("; ")}`, {
    ...(hint === undefined ? {} : { hint }),
    details: { problems },
  });
}

function describeIssue(issue: z.ZodIssue, input: unknown): string {
  const field = issue.path.length > 0 ? issue.path.join(".") : "value";
  if (issue.code === "unrecognized_keys") {
    return `${issue.keys.map((k) => `"${k}"`).join(", ")} ${issue.keys.length === 1 ? "is not a known field" : "are not known fields"}${field === "value" ? "" : ` of ${field}`}`;
  }
  const given = valueAt(input, issue.path);
  if (given === undefined) return `${field}: is required (${issue.message})`;
  return `${field}: ${show(given)} is not allowed (${issue.message})`;
}

function valueAt(input: unknown, path: PropertyKey[]): unknown {
  let here: unknown = input;
  for (const key of path) {
    if (here === null || typeof here !== "object") return undefined;
    here = (here as Record<PropertyKey, unknown>)[key];
  }
  return here;
}

function show(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  const json = JSON.stringify(value);
  return json.length > 60 ? `${json.slice(0, 57)}...` : json;
}
