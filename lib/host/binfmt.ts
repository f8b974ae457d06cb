/**
 * Running the other architecture's programs on this host, which Debian image builds for that
 * architecture need (mmdebstrap runs its maintainer scripts): qemu-user-static registered in
 * binfmt_misc. On a machine without systemd (containers, CI runners, fresh VMs) binfmt_misc is
 * often not mounted, so the registrations qemu-user-static's install left in /var/lib/binfmts
 * never reached the kernel; mounting it and enabling the one entry is enough.
 */
import { existsSync, readFileSync } from "node:fs";
import { HostDependencyMissingError } from "../errors.ts";
import { runHost, which } from "./process.ts";

/** A guest architecture, as lib/kernel/arch.ts names them (kept literal: lib/host depends on nothing above it). */
type GuestArch = "x86_64" | "aarch64";

const BINFMT_DIR = "/proc/sys/fs/binfmt_misc";

export type ForeignArchState = { ok: true } | { ok: false; reason: string; fix: string[] };

/** The binfmt_misc entry name qemu-user-static registers for a guest arch. */
export function binfmtEntry(arch: GuestArch): string {
  return arch === "aarch64" ? "qemu-aarch64" : "qemu-x86_64";
}

/** Whether programs of `arch` run here through binfmt_misc, and if not, the commands that fix it. */
export function foreignArchState(arch: GuestArch, dir = BINFMT_DIR): ForeignArchState {
  const entry = binfmtEntry(arch);
  const fix = [`mount -t binfmt_misc binfmt_misc ${BINFMT_DIR}`, `update-binfmts --enable ${entry}`];
  if (!existsSync(`${dir}/status`)) return { ok: false, reason: `binfmt_misc is not mounted at ${dir}`, fix };
  let text: string;
  try {
    text = readFileSync(`${dir}/${entry}`, "utf8");
  } catch {
    return { ok: false, reason: `no binfmt_misc entry "${entry}" (qemu-user-static not installed or not registered)`, fix: fix.slice(1) };
  }
  if (!/^enabled$/m.test(text)) return { ok: false, reason: `the binfmt_misc entry "${entry}" is disabled`, fix: fix.slice(1) };
  return { ok: true };
}

/**
 * Makes `arch` programs runnable here, as root: mounts binfmt_misc and enables qemu's entry.
 * Without root, or when that does not help, throws with the exact commands to run.
 */
export async function ensureForeignArch(arch: GuestArch, action: string): Promise<void> {
  let state = foreignArchState(arch);
  if (state.ok) return;
  if (process.getuid?.() === 0 && which("update-binfmts") !== undefined) {
    for (const command of state.fix) {
      const [file, ...args] = command.split(" ");
      await runHost(file!, args, { timeoutMs: 30_000 });
    }
    state = foreignArchState(arch);
    if (state.ok) return;
  }
  throw new HostDependencyMissingError(`${action}: ${arch} programs cannot run on this host: ${state.reason}`, {
    hint: `install qemu-user-static and binfmt-support (\`smolvm setup\`), then as root: ${state.fix.join(" && ")}`,
    details: { arch, reason: state.reason },
  });
}
