import { describe, expect, test } from "bun:test";
import { lazySchema, z } from "../../lib/zod.ts";
import { sandboxConfigSchema } from "../../lib/config.ts";

describe("lazySchema", () => {
  test("builds its schema once, on first use, not when declared", () => {
    let builds = 0;
    const Point = lazySchema(() => {
      builds++;
      return z.object({ x: z.int(), y: z.int() });
    });
    expect(builds).toBe(0);
    expect(Point.parse({ x: 1, y: 2 })).toEqual({ x: 1, y: 2 });
    expect(Point.safeParse({ x: "1", y: 2 }).success).toBe(false);
    expect(builds).toBe(1);
  });

  test("composes like the schema it stands for: nested, optional, picked from and extended", () => {
    const Name = lazySchema(() => z.string().check(z.minLength(2)));
    const Person = lazySchema(() => z.object({ name: Name, nick: z.optional(Name) }));
    expect(Person.parse({ name: "ada" })).toEqual({ name: "ada" });
    expect(Person.safeParse({ name: "a" }).success).toBe(false);
    const Nameless = z.omit(Person, { name: true });
    expect(Nameless.parse({ nick: "al" })).toEqual({ nick: "al" });
    const Aged = z.extend(Person, { age: z.int() });
    expect(Aged.safeParse({ name: "ada" }).success).toBe(false);
    expect(Aged.parse({ name: "ada", age: 36 })).toEqual({ name: "ada", age: 36 });
  });

  test("the sandbox config, declared lazily, still fills defaults and refuses what it did", () => {
    expect(sandboxConfigSchema.parse({}).memoryMiB).toBe(512);
    const refused = sandboxConfigSchema.safeParse({ vcpus: 0 });
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toContain("an integer from 1 to 64");
  });

  test("English messages: the locale is set before any schema parses", () => {
    const refused = z.object({ n: z.number() }).safeParse({ n: "x" });
    expect(refused.error?.issues[0]?.message).toContain("expected number");
  });
});
