/**
 * The error a promise rejects with, checked to be of the expected class; a promise that resolves
 * fails the test instead (after releasing a socket it resolved with).
 */
import { expect } from "bun:test";
import { SmolError } from "../../lib/errors.ts";

export async function rejection<E extends Error = SmolError>(
  promise: Promise<unknown>,
  errorClass: abstract new (...args: never[]) => E = SmolError as unknown as abstract new (...args: never[]) => E,
): Promise<E> {
  let value: unknown;
  try {
    value = await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(errorClass);
    return error as E;
  }
  (value as { destroy?: () => void } | undefined)?.destroy?.();
  throw new Error(`expected a rejection with ${errorClass.name}, got a value`);
}
