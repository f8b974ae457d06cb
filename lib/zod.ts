/**
 * zod for all of smolvm: zod/mini, whose functional API loads in a fraction of classic zod's
 * start-up time, with classic zod's English messages. zod/mini sets no locale (every default
 * message would read "Invalid input"), and `issue.message` reaches users through `validate.ts`
 * and the agent client; English costs ~0.2 ms of start-up. Import `z` from here, never from
 * "zod/mini" directly, so that no parse runs before the locale is set.
 *
 * Every function is imported by name and `z` is an object of only those: the bundler then drops
 * the rest of zod. Importing the `z` namespace kept all of it, and evaluating that cost every
 * smolvm process 2.3-3.4 ms before its first line (measured, compiled binary); by name, 0.2-0.3.
 * A function not listed here is added here, by name.
 *
 * `en` is imported by name, not as `z.locales.en`: reading the namespace would bundle every locale.
 * Validators are interpreted (`jitless`): see below.
 */
import {
  _default, array, base64, boolean, config, discriminatedUnion, enum as enumOf, extend, int, ipv4, iso, lazy, literal, maximum,
  maxLength, minimum, minLength, NEVER, nonnegative, nullable, number, object, omit, optional, pipe, positive, record, refine, regex,
  startsWith, strictObject, string, transform, tuple, union, unknown,
} from "zod/mini";
import type * as mini from "zod/mini";
import { en } from "zod/locales";

export const z = {
  _default, array, base64, boolean, config, discriminatedUnion, enum: enumOf, extend, int, ipv4, iso, lazy, literal, maximum,
  maxLength, minimum, minLength, NEVER, nonnegative, nullable, number, object, omit, optional, pipe, positive, record, refine, regex,
  startsWith, strictObject, string, transform, tuple, union, unknown,
};

/** zod's types, under the names the code uses (`z.infer<typeof Schema>`). */
export declare namespace z {
  export type infer<T> = mini.infer<T>;
  export type input<T> = mini.input<T>;
  export type output<T> = mini.output<T>;
  export type ZodMiniType<O = unknown, I = unknown> = mini.ZodMiniType<O, I>;
  export type ZodIssue = mini.core.$ZodIssue;
  export type ZodError = mini.core.$ZodError;
}

z.config(en());
// No compiling of validators with `new Function` on first use: a CLI call parses a handful of
// messages and exits, and compiling them cost it ~2.5 ms of CPU (measured, `smolvm exec`).
z.config({ jitless: true });

/**
 * A schema built the first time anything reads it. Building a large schema costs a new process
 * milliseconds (the sandbox config's took 2 ms of every `smolvm exec`, which never reads a config).
 * Unlike `z.lazy`, declaring one runs none of zod (the ~45 protocol and record schemas declared with z.lazy
 * cost every process ~1 ms), and it can still be extended or picked from (`z.omit(schema, ...)`).
 */
export function lazySchema<T extends object>(build: () => T): T {
  let built: T | undefined;
  const schema = () => (built ??= build());
  return new Proxy({} as T, {
    get: (_target, key) => Reflect.get(schema(), key),
    has: (_target, key) => Reflect.has(schema(), key),
    ownKeys: () => Reflect.ownKeys(schema()),
    getPrototypeOf: () => Reflect.getPrototypeOf(schema()),
    getOwnPropertyDescriptor: (_target, key) => {
      const descriptor = Reflect.getOwnPropertyDescriptor(schema(), key);
      // A proxy may only report a property its (empty) target lacks as configurable.
      return descriptor === undefined ? undefined : { ...descriptor, configurable: true };
    },
  });
}
