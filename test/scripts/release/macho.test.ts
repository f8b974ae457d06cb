import { expect, test } from "bun:test";
import { adhocSign, CPU_TYPE_ARM64, parseMachO, verifySignature } from "../../../scripts/release/macho.ts";

/** A minimal arm64 executable: __TEXT (two pages of code), __LINKEDIT, and a reserved signature. */
function tinyMachO(reserved = 16): Buffer {
  const textSize = 8192;
  const linkeditData = 112;
  const dataoff = textSize + linkeditData;
  const file = Buffer.alloc(dataoff + reserved);
  const segment = (at: number, name: string, fileoff: number, filesize: number) => {
    file.writeUInt32LE(0x19, at);
    file.writeUInt32LE(72, at + 4);
    file.write(name, at + 8, "latin1");
    file.writeBigUInt64LE(0x100000000n + BigInt(fileoff), at + 24);
    file.writeBigUInt64LE(BigInt(Math.ceil(filesize / 0x4000) * 0x4000), at + 32);
    file.writeBigUInt64LE(BigInt(fileoff), at + 40);
    file.writeBigUInt64LE(BigInt(filesize), at + 48);
  };
  file.writeUInt32LE(0xfeedfacf, 0);
  file.writeUInt32LE(CPU_TYPE_ARM64, 4);
  file.writeUInt32LE(2, 12); // MH_EXECUTE
  file.writeUInt32LE(3, 16);
  file.writeUInt32LE(72 + 72 + 16, 20);
  segment(32, "__TEXT", 0, textSize);
  segment(104, "__LINKEDIT", textSize, linkeditData + reserved);
  file.writeUInt32LE(0x1d, 176);
  file.writeUInt32LE(16, 180);
  file.writeUInt32LE(dataoff, 184);
  file.writeUInt32LE(reserved, 188);
  for (let i = 256; i < textSize; i++) file[i] = (i * 7) & 0xff;
  return file;
}

test("an ad-hoc signature covers every page and grows __LINKEDIT to hold it", () => {
  const unsigned = tinyMachO();
  expect(verifySignature(unsigned).valid).toBe(false);
  const signed = adhocSign(unsigned, "smolvm");
  const report = verifySignature(signed);
  expect(report).toEqual({ valid: true, problems: [], identifier: "smolvm", flags: 0x20002, pages: 3 });
  const macho = parseMachO(signed);
  const linkedit = macho.segments.find((s) => s.name === "__LINKEDIT")!;
  expect(linkedit.fileoff + linkedit.filesize).toBe(signed.length);
  expect(linkedit.vmsize >= BigInt(linkedit.filesize)).toBe(true);
  expect(macho.codeSignature!.dataoff + macho.codeSignature!.datasize).toBe(signed.length);
  // Signing again gives the same bytes: the signature depends only on the code.
  expect(adhocSign(signed, "smolvm").equals(signed)).toBe(true);
});

test("a changed byte, a cut file or trailing bytes break the signature, and the report says where", () => {
  const signed = adhocSign(tinyMachO(), "smolvm");
  const tampered = Buffer.from(signed);
  tampered[4096 + 10]! ^= 1;
  expect(verifySignature(tampered).problems).toEqual(["1 of 3 pages do not match their hashes (first: page 1)"]);
  expect(verifySignature(signed.subarray(0, signed.length - 1)).problems).toEqual(["the signature runs past the end of the file"]);
  expect(verifySignature(Buffer.concat([signed, Buffer.alloc(7)])).problems).toEqual(["7 bytes follow the signature"]);
});

test("a signature that does not reach the end of the code is reported (Bun's stale darwin-x64 case)", () => {
  const signed = adhocSign(tinyMachO(), "smolvm");
  // Pretend more code was appended after signing, the way `bun build --compile` appends the bundle.
  const grown = Buffer.from(signed);
  const dataoff = grown.readUInt32LE(184);
  grown.writeUInt32LE(dataoff, 184);
  const cdLimitOffset = dataoff + 20 + 32;
  grown.writeUInt32BE(dataoff - 4096, cdLimitOffset);
  expect(verifySignature(grown).problems[0]).toBe(`the signature covers ${dataoff - 4096} bytes, but the code runs to ${dataoff}`);
});

test("files that are not signable say why", () => {
  expect(() => parseMachO(Buffer.from("\x7fELF"))).toThrow("not a 64-bit little-endian Mach-O file");
  const noSignature = tinyMachO();
  noSignature.writeUInt32LE(2, 16); // drop LC_CODE_SIGNATURE from the command count
  expect(verifySignature(noSignature).problems[0]).toStartWith("no LC_CODE_SIGNATURE");
  expect(() => adhocSign(noSignature, "x")).toThrow("no LC_CODE_SIGNATURE");
  const notLast = Buffer.concat([tinyMachO(), Buffer.alloc(4)]);
  expect(() => adhocSign(notLast, "x")).toThrow("not at the end");
});
