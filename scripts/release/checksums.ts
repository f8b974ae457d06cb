/**
 * SHA256SUMS: one line per release file, `<64 hex>  <name>`, the format `sha256sum -c` reads
 * and install.sh parses. Names are bare file names; anything else is refused.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

const LINE = /^([0-9a-f]{64}) [ *]([^/\s]+)$/;

export function formatChecksums(entries: ReadonlyMap<string, string>): string {
  const names = [...entries.keys()].sort();
  for (const name of names) {
    if (!/^[^/\s]+$/.test(name)) throw new Error(`cannot list "${name}" in SHA256SUMS: not a bare file name`);
    if (!/^[0-9a-f]{64}$/.test(entries.get(name)!)) throw new Error(`cannot list "${name}" in SHA256SUMS: "${entries.get(name)}" is not a SHA-256`);
  }
  return names.map((name) => `${entries.get(name)}  ${name}\n`).join("");
}

export function parseChecksums(text: string): Map<string, string> {
  const entries = new Map<string, string>();
  for (const [index, line] of text.split("\n").entries()) {
    if (line === "") continue;
    const match = LINE.exec(line);
    if (match === null) throw new Error(`SHA256SUMS line ${index + 1} is malformed: ${JSON.stringify(line.slice(0, 80))}`);
    if (entries.has(match[2]!)) throw new Error(`SHA256SUMS lists "${match[2]}" twice`);
    entries.set(match[2]!, match[1]!);
  }
  return entries;
}

export function sha256File(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    createReadStream(path)
      .on("data", (chunk) => hash.update(chunk))
      .on("error", reject)
      .on("end", () => resolve(hash.digest("hex")));
  });
}
