/**
 * A sandbox's VMM ticket on disk (`vms/<id>/vmm.json`, lib/backends/types.ts): written by whoever
 * launched the VMM, read by the supervisor that attaches to it, removed once the VMM has ended.
 * Its existence with a live pid is what "a VMM of this sandbox runs" means.
 */
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import type { VmmTicket } from "../backends/types.ts";
import { pidAlive } from "../host/pids.ts";
import { lazySchema, z } from "../zod.ts";
import type { SandboxFiles } from "./layout.ts";

const ticketSchema = lazySchema(() => z.object({
  pid: z.int().check(z.positive()),
  controlSocketPath: z.string(),
  agentSocketPath: z.string(),
  accel: z.enum(["kvm", "hvf", "tcg"]),
  accelReason: z.string(),
  jail: z.optional(z.object({ chroot: z.string(), uid: z.int(), gid: z.int() })),
}));

/** Written whole and renamed into place, so a reader never sees half a ticket. */
export function writeTicket(files: SandboxFiles, ticket: VmmTicket): void {
  const temp = `${files.vmmTicket}.${process.pid}.tmp`;
  writeFileSync(temp, `${JSON.stringify(ticket)}\n`, { mode: 0o600 });
  renameSync(temp, files.vmmTicket);
}

/** The ticket of this sandbox's VMM while that VMM runs; undefined when there is none to attach to. */
export function liveTicket(files: SandboxFiles): VmmTicket | undefined {
  let parsed;
  try {
    parsed = ticketSchema.safeParse(JSON.parse(readFileSync(files.vmmTicket, "utf8")));
  } catch {
    return undefined;
  }
  return parsed.success && pidAlive(parsed.data.pid) ? parsed.data : undefined;
}

export function removeTicket(files: SandboxFiles): void {
  rmSync(files.vmmTicket, { force: true });
}
