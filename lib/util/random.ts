/**
 * Random bytes from Web Crypto. Same kernel source as `node:crypto`'s randomBytes, but loading
 * `node:crypto` costs Bun ~10 ms, which every CLI command on the path to a sandbox would pay.
 */

export function randomBytes(count: number): Buffer {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(count)));
}

export function randomHex(count: number): string {
  return randomBytes(count).toString("hex");
}
