/**
 * Mach-O code signatures for the darwin binaries, which cannot run on the Linux machines that
 * build them. macOS on Apple silicon kills (SIGKILL, before main) any arm64 process whose
 * embedded signature does not hash to the file's pages, and `bun build --compile` appends the
 * bundle to a template whose signature then no longer matches (Bun 1.4.5: darwin-arm64 comes
 * out re-signed and valid, darwin-x64 keeps the template's stale one). So the build re-signs
 * every darwin binary ad hoc, the way ld64 does ("linker-signed": a CodeDirectory of SHA-256
 * page hashes, no certificate), and `verifySignature` checks any binary the way the kernel
 * checks pages. Layouts: <mach-o/loader.h> and <kern/cs_blobs.h>.
 */
import { createHash } from "node:crypto";

const MH_MAGIC_64 = 0xfeedfacf;
const MH_EXECUTE = 2;
const LC_SEGMENT_64 = 0x19;
const LC_CODE_SIGNATURE = 0x1d;
const CSMAGIC_EMBEDDED_SIGNATURE = 0xfade0cc0;
const CSMAGIC_CODEDIRECTORY = 0xfade0c02;
const CSSLOT_CODEDIRECTORY = 0;
const CS_ADHOC = 0x2;
const CS_LINKER_SIGNED = 0x20000;
const CS_HASHTYPE_SHA256 = 2;
const CS_EXECSEG_MAIN_BINARY = 0x1;
const CODEDIRECTORY_VERSION = 0x20400; // the version with exec-segment fields, as ld64 writes
const CODEDIRECTORY_HEADER = 88;
const PAGE_SHIFT = 12; // code-signing pages are 4 KiB on both arches
export const CPU_TYPE_X86_64 = 0x01000007;
export const CPU_TYPE_ARM64 = 0x0100000c;

export interface Segment {
  name: string;
  /** Offset of this load command in the file, to patch it. */
  commandOffset: number;
  vmsize: bigint;
  fileoff: number;
  filesize: number;
}

export interface MachO {
  cpuType: number;
  fileType: number;
  segments: Segment[];
  codeSignature?: { commandOffset: number; dataoff: number; datasize: number };
}

export function isMachO64(file: Uint8Array): boolean {
  return file.length >= 32 && view(file).getUint32(0, true) === MH_MAGIC_64;
}

/** The header and the load commands signing needs: segments and LC_CODE_SIGNATURE. */
export function parseMachO(file: Uint8Array): MachO {
  if (!isMachO64(file)) throw new Error("not a 64-bit little-endian Mach-O file");
  const data = view(file);
  const cpuType = data.getUint32(4, true);
  const fileType = data.getUint32(12, true);
  const commands = data.getUint32(16, true);
  const commandsEnd = 32 + data.getUint32(20, true);
  if (commandsEnd > file.length) throw new Error("load commands run past the end of the file");
  const segments: Segment[] = [];
  let codeSignature: MachO["codeSignature"];
  let offset = 32;
  for (let i = 0; i < commands; i++) {
    if (offset + 8 > commandsEnd) throw new Error(`load command ${i} runs past the load commands`);
    const command = data.getUint32(offset, true);
    const size = data.getUint32(offset + 4, true);
    if (size < 8 || offset + size > commandsEnd) throw new Error(`load command ${i} has a bad size (${size})`);
    if (command === LC_SEGMENT_64) {
      const name = Buffer.from(file.subarray(offset + 8, offset + 24)).toString("latin1").replace(/\0+$/, "");
      segments.push({
        name,
        commandOffset: offset,
        vmsize: data.getBigUint64(offset + 32, true),
        fileoff: Number(data.getBigUint64(offset + 40, true)),
        filesize: Number(data.getBigUint64(offset + 48, true)),
      });
    } else if (command === LC_CODE_SIGNATURE) {
      codeSignature = { commandOffset: offset, dataoff: data.getUint32(offset + 8, true), datasize: data.getUint32(offset + 12, true) };
    }
    offset += size;
  }
  return codeSignature === undefined ? { cpuType, fileType, segments } : { cpuType, fileType, segments, codeSignature };
}

export interface SignatureReport {
  valid: boolean;
  problems: string[];
  identifier?: string;
  flags?: number;
  pages?: number;
}

/** Checks the embedded signature as the kernel would: it covers every byte before it, and every page hashes to its slot. */
export function verifySignature(file: Uint8Array): SignatureReport {
  const macho = parseMachO(file);
  const signature = macho.codeSignature;
  if (signature === undefined) return { valid: false, problems: ["no LC_CODE_SIGNATURE: unsigned (arm64 macOS refuses to run it)"] };
  const problems: string[] = [];
  const { dataoff, datasize } = signature;
  if (dataoff + datasize > file.length) return { valid: false, problems: ["the signature runs past the end of the file"] };
  if (dataoff + datasize !== file.length) problems.push(`${file.length - dataoff - datasize} bytes follow the signature`);
  const blob = view(file.subarray(dataoff, dataoff + datasize));
  if (blob.getUint32(0) !== CSMAGIC_EMBEDDED_SIGNATURE) return { valid: false, problems: ["the signature is not an embedded-signature SuperBlob"] };
  const count = blob.getUint32(8);
  let directory: number | undefined;
  for (let i = 0; i < count; i++) {
    if (blob.getUint32(12 + i * 8) === CSSLOT_CODEDIRECTORY) directory = blob.getUint32(16 + i * 8);
  }
  if (directory === undefined || blob.getUint32(directory) !== CSMAGIC_CODEDIRECTORY) return { valid: false, problems: ["no CodeDirectory in the signature"] };
  const cd = view(file.subarray(dataoff + directory));
  const flags = cd.getUint32(12);
  const hashOffset = cd.getUint32(16);
  const identOffset = cd.getUint32(20);
  const codeSlots = cd.getUint32(28);
  const codeLimit = cd.getUint32(32);
  const hashSize = cd.getUint8(36);
  const hashType = cd.getUint8(37);
  const pageSize = 2 ** cd.getUint8(39);
  const identifierBytes = file.subarray(dataoff + directory + identOffset);
  const identifier = Buffer.from(identifierBytes.subarray(0, identifierBytes.indexOf(0))).toString("utf8");
  if (hashType !== CS_HASHTYPE_SHA256 || hashSize !== 32) problems.push(`hash type ${hashType}/${hashSize} bytes, expected SHA-256`);
  if (codeLimit !== dataoff) problems.push(`the signature covers ${codeLimit} bytes, but the code runs to ${dataoff}`);
  if (codeSlots !== Math.ceil(codeLimit / pageSize)) problems.push(`${codeSlots} page slots for ${codeLimit} bytes`);
  if (problems.length === 0) {
    const bad: number[] = [];
    for (let page = 0; page < codeSlots; page++) {
      const start = page * pageSize;
      const actual = createHash("sha256").update(file.subarray(start, Math.min(start + pageSize, codeLimit))).digest();
      const slot = dataoff + directory + hashOffset + page * hashSize;
      if (!actual.equals(file.subarray(slot, slot + hashSize))) bad.push(page);
    }
    if (bad.length > 0) problems.push(`${bad.length} of ${codeSlots} pages do not match their hashes (first: page ${bad[0]})`);
  }
  return { valid: problems.length === 0, problems, identifier, flags, pages: codeSlots };
}

/**
 * Replaces the embedded signature with a fresh ad-hoc one over the file as it is now. The
 * signature must be the last thing in the file and in __LINKEDIT (true of linker output and of
 * Bun's); the file and __LINKEDIT grow or shrink to the new signature's size.
 */
export function adhocSign(input: Uint8Array, identifier: string): Buffer {
  const macho = parseMachO(input);
  const signature = macho.codeSignature;
  if (signature === undefined) throw new Error("no LC_CODE_SIGNATURE to fill (link with -adhoc_codesign)");
  const linkedit = macho.segments.find((s) => s.name === "__LINKEDIT");
  const text = macho.segments.find((s) => s.name === "__TEXT");
  if (linkedit === undefined || text === undefined) throw new Error("no __TEXT or __LINKEDIT segment");
  if (linkedit.fileoff + linkedit.filesize !== signature.dataoff + signature.datasize || signature.dataoff + signature.datasize !== input.length) {
    throw new Error("the signature is not at the end of __LINKEDIT and of the file");
  }
  const codeLimit = signature.dataoff;
  const pageSize = 2 ** PAGE_SHIFT;
  const slots = Math.ceil(codeLimit / pageSize);
  const ident = Buffer.from(`${identifier}\0`, "utf8");
  const hashOffset = CODEDIRECTORY_HEADER + ident.length;
  const cdLength = hashOffset + slots * 32;
  const superLength = 12 + 8 + cdLength;

  const output = Buffer.alloc(codeLimit + superLength);
  output.set(input.subarray(0, codeLimit));
  const out = view(output);
  // New sizes first: the load commands live in page 0, which is hashed below.
  out.setUint32(signature.commandOffset + 12, superLength, true);
  const linkeditFileSize = codeLimit + superLength - linkedit.fileoff;
  const vmPage = 0x1000;
  out.setBigUint64(linkedit.commandOffset + 48, BigInt(linkeditFileSize), true);
  // The segment's memory must hold its file bytes; a vmsize that already does is left alone.
  const vmsize = BigInt(Math.ceil(linkeditFileSize / vmPage) * vmPage);
  if (vmsize > linkedit.vmsize) out.setBigUint64(linkedit.commandOffset + 32, vmsize, true);

  const blob = new DataView(output.buffer, output.byteOffset + codeLimit, superLength);
  blob.setUint32(0, CSMAGIC_EMBEDDED_SIGNATURE);
  blob.setUint32(4, superLength);
  blob.setUint32(8, 1);
  blob.setUint32(12, CSSLOT_CODEDIRECTORY);
  blob.setUint32(16, 20);
  const cd = new DataView(output.buffer, output.byteOffset + codeLimit + 20, cdLength);
  cd.setUint32(0, CSMAGIC_CODEDIRECTORY);
  cd.setUint32(4, cdLength);
  cd.setUint32(8, CODEDIRECTORY_VERSION);
  cd.setUint32(12, CS_ADHOC | CS_LINKER_SIGNED);
  cd.setUint32(16, hashOffset);
  cd.setUint32(20, CODEDIRECTORY_HEADER);
  cd.setUint32(24, 0); // no special slots: no Info.plist, requirements or entitlements
  cd.setUint32(28, slots);
  cd.setUint32(32, codeLimit);
  cd.setUint8(36, 32);
  cd.setUint8(37, CS_HASHTYPE_SHA256);
  cd.setUint8(38, 0);
  cd.setUint8(39, PAGE_SHIFT);
  // spare2, scatterOffset, teamOffset, spare3 and codeLimit64 stay zero.
  cd.setBigUint64(64, BigInt(text.fileoff));
  cd.setBigUint64(72, BigInt(text.filesize));
  cd.setBigUint64(80, macho.fileType === MH_EXECUTE ? BigInt(CS_EXECSEG_MAIN_BINARY) : 0n);
  output.set(ident, codeLimit + 20 + CODEDIRECTORY_HEADER);
  for (let page = 0; page < slots; page++) {
    const start = page * pageSize;
    const hash = createHash("sha256").update(output.subarray(start, Math.min(start + pageSize, codeLimit))).digest();
    output.set(hash, codeLimit + 20 + hashOffset + page * 32);
  }
  return output;
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
