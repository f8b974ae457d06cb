/**
 * What an executable is, read from its header: ELF or Mach-O, and for which CPU. The release
 * refuses to publish a binary under a target name it was not built for, and the tests check
 * the darwin binaries this way because they cannot run here.
 */
import { CPU_TYPE_ARM64, CPU_TYPE_X86_64, isMachO64, parseMachO, verifySignature } from "./macho.ts";

export type Os = "linux" | "darwin";
export type Cpu = "x64" | "arm64";

export interface ExecutableFacts {
  format: "elf" | "macho" | "unknown";
  os?: Os;
  cpu?: Cpu | `unknown (${number})`;
  /** ELF: the program interpreter (the dynamic loader, which names the libc). */
  interpreter?: string;
  /** Mach-O: whether the embedded code signature is intact, and what is wrong if not. */
  signature?: { valid: boolean; identifier?: string; problems: string[] };
}

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46];
const EM_X86_64 = 62;
const EM_AARCH64 = 183;
const PT_INTERP = 3;

export function inspectExecutable(file: Uint8Array): ExecutableFacts {
  if (ELF_MAGIC.every((byte, i) => file[i] === byte)) return inspectElf(file);
  if (isMachO64(file)) {
    const macho = parseMachO(file);
    const cpu = macho.cpuType === CPU_TYPE_ARM64 ? "arm64" : macho.cpuType === CPU_TYPE_X86_64 ? "x64" : (`unknown (${macho.cpuType})` as const);
    const report = verifySignature(file);
    const signature = report.identifier === undefined
      ? { valid: report.valid, problems: report.problems }
      : { valid: report.valid, identifier: report.identifier, problems: report.problems };
    return { format: "macho", os: "darwin", cpu, signature };
  }
  return { format: "unknown" };
}

function inspectElf(file: Uint8Array): ExecutableFacts {
  const data = new DataView(file.buffer, file.byteOffset, file.byteLength);
  // Only 64-bit little-endian ELF is ever built.
  if (file[4] !== 2 || file[5] !== 1) return { format: "elf", os: "linux" };
  const machine = data.getUint16(18, true);
  const cpu = machine === EM_X86_64 ? "x64" : machine === EM_AARCH64 ? "arm64" : (`unknown (${machine})` as const);
  const programHeaders = Number(data.getBigUint64(32, true));
  const entrySize = data.getUint16(54, true);
  const count = data.getUint16(56, true);
  let interpreter: string | undefined;
  for (let i = 0; i < count; i++) {
    const at = programHeaders + i * entrySize;
    if (at + 56 > file.length || data.getUint32(at, true) !== PT_INTERP) continue;
    const offset = Number(data.getBigUint64(at + 8, true));
    const size = Number(data.getBigUint64(at + 32, true));
    interpreter = Buffer.from(file.subarray(offset, offset + size)).toString("latin1").replace(/\0+$/, "");
  }
  return interpreter === undefined ? { format: "elf", os: "linux", cpu } : { format: "elf", os: "linux", cpu, interpreter };
}

/** Why `file` is not a working binary for `target` (`linux-x64`...), or nothing when it is. */
export function targetProblems(file: Uint8Array, target: string): string[] {
  const [os, cpu] = target.split("-") as [Os, Cpu];
  const facts = inspectExecutable(file);
  const problems: string[] = [];
  const wantFormat = os === "darwin" ? "macho" : "elf";
  if (facts.format !== wantFormat) return [`is ${facts.format === "unknown" ? "not an executable" : facts.format}, expected ${wantFormat}`];
  if (facts.cpu === undefined) problems.push("is not a 64-bit little-endian executable");
  else if (facts.cpu !== cpu) problems.push(`is built for ${facts.cpu}, expected ${cpu}`);
  if (facts.signature !== undefined && !facts.signature.valid) problems.push(`has a broken code signature: ${facts.signature.problems.join("; ")}`);
  return problems;
}
