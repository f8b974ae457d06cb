/**
 * zod for all of smolvm: zod/mini, whose functional API loads in a fraction of classic zod's
 * start-up time, with classic zod's English messages. zod/mini sets no locale (every default
 * message would read "Invalid input"), and `issue.message` reaches users through `validate.ts`
 * and the agent client; English costs ~0.2 ms of start-up. Import `z` from here, never from
 * "zod/mini" directly, so that no parse runs before the locale is set.
 *
 * `en` is imported by name, not as `z.locales.en`: reading the namespace would bundle every locale.
 * Validators are interpreted (`jitless`): see below.
 */
import { z } from "zod/mini";
import { en } from "zod/locales";

z.config(en());
// No compiling of validators with `new Function` on first use: a CLI call parses a handful of
// messages and exits, and compiling them cost it ~2.5 ms of CPU (measured, `smolvm exec`).
z.config({ jitless: true });

export { z };
