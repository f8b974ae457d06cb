import { describe, expect, test } from "bun:test";
import {
  ERROR_CLASSES, ERROR_CODES, fromWire, NotFoundError, SmolError, smolError, toSmolError, type ErrorCode,
} from "../../lib/errors.ts";

describe("one table from error code to class", () => {
  test("smolError gives every code its class, and every error keeps its code", () => {
    for (const code of ERROR_CODES) {
      const error = smolError(code, `Cannot do it: ${code}`, { hint: "try again" });
      expect(error).toBeInstanceOf(SmolError);
      expect(error.code).toBe(code);
      const cls = (ERROR_CLASSES as Partial<Record<ErrorCode, new (m: string) => SmolError>>)[code];
      if (cls !== undefined) expect(error).toBeInstanceOf(cls);
      else expect(error.constructor).toBe(SmolError);
    }
  });

  test("an error from another process becomes the same class it would be here", () => {
    const error = fromWire({ code: "NOT_FOUND", message: 'Cannot close port 9000 of "dev": no forward listens there', hint: "see port list" });
    expect(error).toBeInstanceOf(NotFoundError);
    expect(error.message).toContain("port 9000");
    expect(error.hint).toBe("see port list");
    expect(fromWire(error.toJSON()).toJSON()).toEqual(error.toJSON());
  });

  test("an unknown or missing code from the wire is INTERNAL, never a crash", () => {
    expect(fromWire({ code: "NO_SUCH_CODE", message: "odd" }).code).toBe("INTERNAL");
    expect(fromWire({}).code).toBe("INTERNAL");
    expect(fromWire({}).message.length).toBeGreaterThan(0);
  });

  test("anything thrown that is not a SmolError is wrapped as INTERNAL with its cause", () => {
    const cause = new Error("boom");
    const wrapped = toSmolError(cause);
    expect(wrapped.code).toBe("INTERNAL");
    expect(wrapped.cause).toBe(cause);
    expect(toSmolError(wrapped)).toBe(wrapped);
  });
});
